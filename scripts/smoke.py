#!/usr/bin/env python3
"""`make smoke API=<base url>`: a black-box check of one deployment of this stack.

It talks to the API only over HTTP, as a client would, so it runs the same against a stack
deployed on AWS, the emulator deployment of `make deploy-local`, or `make run`. It signs in
with an admin you already have (ADMIN_USERNAME, ADMIN_PASSWORD), creates its own users
through the admin API (`smoke-<random>-admin`, `smoke-<random>-customer`), checks, and
deletes them again at the end (also when a check failed). It prints one line per check and
a closing `N passed, N failed`; the exit status is 1 when any check failed.

Environment:
  API                 the stage's base URL (the stack's ApiUrl output), required
  ADMIN_USERNAME      an existing admin (for example one made by `jwt-auth users create`)
  ADMIN_PASSWORD
  ADMIN_TOTP_SECRET   the admin's TOTP secret (base32), when it signs in in two steps
                      (admins must, by default: MfaRequiredRoles)
  ENROL_GIVEN_ADMIN=1 the given admin is a throwaway one without a second factor (as
                      `make smoke-local` and `make deploy-local` make): the suite turns
                      TOTP on for it, after checking it is held to enrolment until then
  MFA_REQUIRED_ROLES  the stack's MfaRequiredRoles (template default: admin); with admin
                      among them, an admin without TOTP must be held to enrolment
  TOKEN_ISSUER        the `iss` the stack issues (template default: the API's URL, API)
  TOKEN_AUDIENCE      the `aud` (template default: lambda-jwt-auth-api)
  CORS_ORIGIN         the stack's CorsAllowOrigin, if set: CORS is checked for it
  EXPECT_THROTTLING=1 a burst on POST /password must meet a 429 (the template's method
                      throttle; set it only where the target throttles)
  ROTATE=1            rotate the signing keys under traffic: ROTATE_COMMAND (a shell
                      command) or, without it, Secrets Manager's RotateSecret of
                      SIGNING_KEYS_SECRET (the stack's SigningKeysSecretArn output; boto3
                      and your AWS credentials); no request may fail meanwhile
"""

import base64
import concurrent.futures
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

import jwt  # PyJWT: a verifier that shares no code with ours
import pyotp  # TOTP codes from an implementation that shares no code with ours
from cryptography.hazmat.primitives.asymmetric import ec

UNAUTHORIZED = {"message": "Unauthorized"}
TIMEOUT_SECS = 30
# The service's grace period for a refresh token presented again just after its rotation.
REFRESH_REUSE_GRACE_SECS = 10
# How soon after a rotation the JWKS route must show the new key (it re-reads every 30 s).
JWKS_SHOWS_NEW_KEY_WITHIN_SECS = 90


class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {name.lower(): value for name, value in headers.items()}
        self.text = body.decode("utf-8", "replace")
        try:
            self.json = json.loads(self.text) if self.text else None
        except ValueError:
            self.json = None

    def __repr__(self):
        # What a failure prints (CI logs): never a token.
        text = self.text
        if isinstance(self.json, dict):
            text = json.dumps({name: ("<redacted>" if name.endswith("token") else value)
                               for name, value in self.json.items()})
        return f"{self.status} {text[:300]}"


class Api:
    def __init__(self, base):
        self.base = base.rstrip("/")

    def call(self, method, path, token=None, body=None, headers=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if body is not None:
            request.add_header("content-type", "application/json")
        if token is not None:
            request.add_header("authorization", f"Bearer {token}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECS) as response:
                return Answer(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as err:
            return Answer(err.code, dict(err.headers), err.read())

    def login(self, username, password):
        return self.call("POST", "/login", body={"username": username, "password": password})


class Failed(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise Failed(message)


def expect_status(answer, status, what):
    expect(answer.status == status, f"{what}: expected {status}, got {answer!r}")


def expect_unauthorized(answer, what):
    """The gateway's 401 for a refused token: exactly `{"message":"Unauthorized"}`."""
    expect_status(answer, 401, what)
    expect(answer.json == UNAUTHORIZED, f"{what}: body {answer.text!r}")


def claims_of(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class Smoke:
    def __init__(self, env):
        self.api = Api(env["API"])
        self.env = env
        self.issuer = env.get("TOKEN_ISSUER") or env["API"].rstrip("/")
        self.audience = env.get("TOKEN_AUDIENCE") or "lambda-jwt-auth-api"
        self.run_id = secrets.token_hex(4)
        self.passed = 0
        self.failed = 0
        self.created = []  # user ids to delete at the end
        self.admin_token = None
        self.admin_totp_secret = env.get("ADMIN_TOTP_SECRET") or None
        # The last TOTP step each user spent: each step's code signs in once.
        self.spent_steps = {}
        self.users = {}
        self.algorithm = None
        self.admins_need_totp = "admin" in (
            env.get("MFA_REQUIRED_ROLES", "admin").replace(" ", "").split(","))

    def check(self, name, body):
        try:
            body()
        except Failed as err:
            self.failed += 1
            print(f"FAIL  {name}: {err}", flush=True)
            return False
        except Exception as err:  # a bug of the suite or the network: a failure too
            self.failed += 1
            print(f"FAIL  {name}: {type(err).__name__}: {err}", flush=True)
            traceback.print_exc(limit=3, file=sys.stderr)
            return False
        self.passed += 1
        print(f"ok    {name}", flush=True)
        return True

    # --- the checks, in the order they run -------------------------------------------------

    def code_for(self, username, secret):
        """A code of `secret` for a step `username` has not spent. The step after the
        current one is accepted too, and is the one other clients of the same user are
        least likely to have spent; when it is spent, the next step is waited for."""
        while True:
            now_step = int(time.time()) // 30
            step = max(now_step + 1, self.spent_steps.get(username, -1) + 1)
            if step <= now_step + 1:
                self.spent_steps[username] = step
                return pyotp.TOTP(secret).at(step * 30)
            time.sleep(1)

    def second_step(self, username, challenge, secret):
        # Another client of the same user (whoever runs this suite) may have spent a step
        # this suite does not know of: then the next one, twice at most (wrong codes count
        # towards the code's lockout).
        for _ in range(3):
            answer = self.api.call("POST", "/login/mfa", body={
                "challenge": challenge, "code": self.code_for(username, secret)})
            if answer.status != 401:
                break
        expect_status(answer, 200, f"POST /login/mfa of {username}")
        return answer.json

    def given_admin_session(self):
        """The given admin's tokens, through the second step when it has TOTP on."""
        username = self.env["ADMIN_USERNAME"]
        answer = self.api.login(username, self.env["ADMIN_PASSWORD"])
        expect_status(answer, 200, "POST /login")
        if answer.json.get("mfa_required"):
            expect(self.admin_totp_secret,
                   "the given admin signs in with a second factor: set ADMIN_TOTP_SECRET")
            return self.second_step(username, answer.json["challenge"], self.admin_totp_secret)
        return answer.json

    def enrol_the_given_admin(self, held):
        """Turns TOTP on for a throwaway given admin, held to enrolment until then."""
        token = held["access_token"]
        expect_status(self.api.call("GET", "/users?limit=1", token), 403,
                      "GET /users by an admin without its second factor")
        started = self.api.call("POST", "/mfa/totp", token,
                                {"password": self.env["ADMIN_PASSWORD"]})
        expect_status(started, 200, "POST /mfa/totp of the given admin")
        secret = started.json["secret"]
        code = self.code_for(self.env["ADMIN_USERNAME"], secret)
        confirmed = self.api.call("POST", "/mfa/totp/confirm", token, {"code": code})
        expect_status(confirmed, 200, "POST /mfa/totp/confirm of the given admin")
        self.admin_totp_secret = secret

    def sign_in_as_the_given_admin(self):
        body = self.given_admin_session()
        if body.get("second_factor_enrolment_required"):
            expect(self.env.get("ENROL_GIVEN_ADMIN") == "1",
                   "the given admin must sign in with a second factor (MfaRequiredRoles) and "
                   "has none: turn it on (the web page, or POST /mfa/totp) and set "
                   "ADMIN_TOTP_SECRET, or set ENROL_GIVEN_ADMIN=1 for a throwaway admin")
            self.enrol_the_given_admin(body)
            body = self.given_admin_session()
        for field in ("access_token", "refresh_token", "expires_in"):
            expect(field in body, f"no {field} in {sorted(body)}")
        expect(body.get("token_type") == "Bearer", f"token_type {body.get('token_type')!r}")
        expect(not body.get("second_factor_enrolment_required"), "the given admin is not held")
        self.admin_token = body["access_token"]

    def create_own_users(self):
        for role in ("admin", "customer"):
            username = f"smoke-{self.run_id}-{role}"
            password = f"{secrets.token_urlsafe(12)}-Pw{role[0]}"
            answer = self.api.call(
                "POST",
                "/users",
                self.admin_token,
                {"username": username, "password": password, "role": role},
            )
            expect_status(answer, 201, f"POST /users ({role})")
            user = answer.json["user"]
            self.created.append(user["id"])
            expect(user["role"] == role and user["username"] == username, f"created {user}")
            self.users[role] = {"id": user["id"], "username": username, "password": password}

    def sign_in(self, role):
        user = self.users[role]
        answer = self.api.login(user["username"], user["password"])
        expect_status(answer, 200, f"login of the {role}")
        return answer.json

    def tokens_carry_the_claims(self):
        session = self.sign_in("admin")
        claims = claims_of(session["access_token"])
        for claim in ("sub", "role", "iss", "aud", "iat", "exp", "jti"):
            expect(claim in claims, f"no {claim} in {sorted(claims)}")
        expect(claims["sub"] == self.users["admin"]["id"], f"sub {claims['sub']}")
        expect(claims["role"] == "admin", f"role {claims['role']}")
        expect(claims["iss"] == self.issuer, f"iss {claims['iss']!r}, expected {self.issuer!r}")
        audience = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        expect(self.audience in audience, f"aud {claims['aud']!r}, expected {self.audience!r}")
        expect(claims["exp"] > claims["iat"], "exp after iat")
        expect(claims.get("amr") == ["pwd"], f"amr {claims.get('amr')!r} after a password alone")
        self.users["admin"]["session"] = session
        self.algorithm = jwt.get_unverified_header(session["access_token"]).get("alg")

    def jwks_verifies_with_an_independent_verifier(self):
        answer = self.api.call("GET", "/.well-known/jwks.json")
        expect_status(answer, 200, "GET /.well-known/jwks.json")
        expect("max-age" in answer.headers.get("cache-control", ""), "the JWKS is cacheable")
        token = self.users["admin"]["session"]["access_token"]
        header = jwt.get_unverified_header(token)
        expect(header["alg"] in ("ES256", "EdDSA", "RS256"),
               f"alg {header['alg']}: only asymmetric tokens can be verified by others")
        keys = {key.get("kid"): key for key in answer.json.get("keys", [])}
        expect(header.get("kid") in keys, f"kid {header.get('kid')} not in the JWKS {sorted(keys)}")
        key = jwt.PyJWK(keys[header["kid"]])
        jwt.decode(
            token,
            key=key,
            algorithms=[header["alg"]],
            audience=self.audience,
            issuer=self.issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            leeway=30,  # the clock skew the service itself tolerates
        )

    def discovery_leads_a_verifier_from_the_issuer_to_the_keys(self):
        # What an API Gateway JWT authorizer does: from `iss` alone, the discovery document,
        # its `jwks_uri`, the key by `kid` (PyJWKClient), and the token verified with them.
        token = self.users["admin"]["session"]["access_token"]
        issuer = claims_of(token)["iss"]
        if not issuer.startswith(("https://", "http://")):
            answer = self.api.call("GET", "/.well-known/openid-configuration")
            expect_status(answer, 404, "discovery while the issuer is not a URL")
            return
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECS) as response:
            document = json.load(response)
        expect(document.get("issuer") == issuer,
               f"issuer {document.get('issuer')!r} is not the tokens' iss {issuer!r}")
        for member in ("jwks_uri", "response_types_supported", "subject_types_supported",
                       "id_token_signing_alg_values_supported"):
            expect(member in document, f"no {member} in the discovery document")
        key = jwt.PyJWKClient(document["jwks_uri"], timeout=TIMEOUT_SECS).get_signing_key_from_jwt(token)
        jwt.decode(
            token,
            key=key,
            algorithms=document["id_token_signing_alg_values_supported"],
            audience=self.audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            leeway=30,
        )

    def refused_tokens_get_exactly_unauthorized(self):
        expect_unauthorized(self.api.call("GET", "/users"), "no token")
        expect_unauthorized(self.api.call("GET", "/users", "not.a.token"), "a malformed token")
        claims = claims_of(self.admin_token)
        # Signed by a key that is not ours, under our kid: forged.
        kid = jwt.get_unverified_header(self.admin_token).get("kid")
        forged = jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), "ES256",
                            headers={"kid": kid})
        expect_unauthorized(self.api.call("GET", "/users", forged), "a token of another key")
        unsigned = jwt.encode(claims, None, "none", headers={"kid": kid})
        expect_unauthorized(self.api.call("GET", "/users", unsigned), "alg none")
        bad_aud = dict(claims, aud="someone-else")
        tampered = self.admin_token.rsplit(".", 2)
        body = base64.urlsafe_b64encode(json.dumps(bad_aud).encode()).rstrip(b"=").decode()
        expect_unauthorized(
            self.api.call("GET", "/users", ".".join([tampered[0], body, tampered[2]])),
            "a token whose payload was changed",
        )

    def wrong_password_and_unknown_user_answer_alike(self):
        wrong = self.api.login(self.users["customer"]["username"], "not-the-password-123")
        unknown = self.api.login(f"smoke-{self.run_id}-nobody", "not-the-password-123")
        expect_status(wrong, 401, "a wrong password")
        expect((wrong.status, wrong.json) == (unknown.status, unknown.json),
               f"wrong password {wrong!r} vs unknown user {unknown!r}")

    def admin_lists_pages_and_reads_users(self):
        first = self.api.call("GET", "/users?limit=1", self.admin_token)
        expect_status(first, 200, "GET /users?limit=1")
        expect(len(first.json["users"]) == 1, f"one user: {first.json}")
        cursor = first.json.get("next_cursor")
        expect(cursor, "a next_cursor (there are at least three users)")
        second = self.api.call(
            "GET", "/users?limit=1&cursor=" + urllib.parse.quote(cursor), self.admin_token)
        expect_status(second, 200, "the next page")
        expect(second.json["users"][0]["id"] != first.json["users"][0]["id"], "a new page")
        one = self.api.call("GET", f"/users/{self.users['customer']['id']}", self.admin_token)
        expect_status(one, 200, "GET /users/{id}")
        expect(one.json["user"]["username"] == self.users["customer"]["username"], f"{one.json}")
        expect("password" not in one.text and "hash" not in one.text, "no credential answered")

    def customer_reaches_only_itself(self):
        session = self.sign_in("customer")
        token = session["access_token"]
        own = self.api.call("GET", f"/users/{self.users['customer']['id']}", token)
        expect_status(own, 200, "a customer's own user")
        other = self.api.call("GET", f"/users/{self.users['admin']['id']}", token)
        expect_status(other, 403, "another user")
        expect_status(self.api.call("GET", "/users", token), 403, "the user list")
        expect_status(self.api.call("POST", "/users", token, {"username": "x"}), 403,
                      "creating a user")

    def refresh_rotates_and_a_replay_ends_the_family(self):
        session = self.sign_in("customer")
        first = session["refresh_token"]
        rotated = self.api.call("POST", "/token/refresh", body={"refresh_token": first})
        expect_status(rotated, 200, "the first refresh")
        second = rotated.json["refresh_token"]
        expect(second != first, "a new refresh token")
        expect_status(self.api.call("GET", f"/users/{self.users['customer']['id']}",
                                    rotated.json["access_token"]), 200, "the new access token")
        replay = self.api.call("POST", "/token/refresh", body={"refresh_token": first})
        expect_status(replay, 401, "the replayed refresh token")
        # Within its grace period (a client retrying a refresh whose answer was lost) a
        # replay is refused but ends nothing: the family's latest token still refreshes.
        again = self.api.call("POST", "/token/refresh", body={"refresh_token": second})
        expect_status(again, 200, "the latest refresh token, after a replay within the grace")
        third = again.json["refresh_token"]
        # After it, a replay ends the whole family.
        time.sleep(REFRESH_REUSE_GRACE_SECS + 1)
        replay = self.api.call("POST", "/token/refresh", body={"refresh_token": first})
        expect_status(replay, 401, "the refresh token replayed after the grace period")
        after = self.api.call("POST", "/token/refresh", body={"refresh_token": third})
        expect_status(after, 401, "the family's latest refresh token, after the replay")

    def logout_holds_under_the_authorizer_cache(self):
        token = self.sign_in("customer")["access_token"]
        path = f"/users/{self.users['customer']['id']}"
        # Allowed, and so (with a cache TTL) cached by API Gateway.
        expect_status(self.api.call("GET", path, token), 200, "before logout")
        expect_status(self.api.call("POST", "/logout", token), 204, "POST /logout")
        after = self.api.call("GET", path, token)
        expect_status(after, 401, "the logged-out token")

    def totp_codes_of_an_independent_implementation_sign_in(self):
        # A user of its own: the others sign in with a password alone in later checks.
        username = f"smoke-{self.run_id}-totp"
        password = f"{secrets.token_urlsafe(12)}-Pwt"
        created = self.api.call("POST", "/users", self.admin_token,
                                {"username": username, "password": password, "role": "customer"})
        expect_status(created, 201, "POST /users (the TOTP user)")
        self.created.append(created.json["user"]["id"])
        user = {"id": created.json["user"]["id"], "username": username, "password": password}
        signed_in = self.api.login(username, password)
        expect_status(signed_in, 200, "login of the TOTP user")
        token = signed_in.json["access_token"]
        started = self.api.call("POST", "/mfa/totp", token, {"password": password})
        expect_status(started, 200, "POST /mfa/totp")
        parsed = pyotp.parse_uri(started.json["otpauth_uri"])
        expect(parsed.secret == started.json["secret"] and parsed.digits == 6
               and parsed.interval == 30 and parsed.name == user["username"],
               f"the otpauth URI as pyotp reads it: {started.json['otpauth_uri']}")
        totp = pyotp.TOTP(started.json["secret"])
        now = time.time()
        confirmed = self.api.call("POST", "/mfa/totp/confirm", token, {"code": totp.at(now)})
        expect_status(confirmed, 200, "POST /mfa/totp/confirm")
        recovery = confirmed.json["recovery_codes"]
        expect(len(recovery) == 10, f"{len(recovery)} recovery codes")
        expect_status(self.api.call("GET", f"/users/{user['id']}", token), 401,
                      "the password-only session, once TOTP is on")

        def first_step():
            answer = self.api.login(user["username"], user["password"])
            expect_status(answer, 200, "the first step")
            expect(answer.json.get("mfa_required") is True and "access_token" not in answer.json,
                   f"the first step answered {sorted(answer.json)}")
            return answer.json["challenge"]

        # The confirming step is spent: the next one (within the step of skew) signs in.
        second = self.api.call("POST", "/login/mfa", body={
            "challenge": first_step(), "code": totp.at(now + 30)})
        expect_status(second, 200, "POST /login/mfa with the next step's code")
        path = f"/users/{user['id']}"
        expect_status(self.api.call("GET", path, second.json["access_token"]), 200,
                      "the two-step token")
        replayed = self.api.call("POST", "/login/mfa", body={
            "challenge": first_step(), "code": totp.at(now + 30)})
        expect_status(replayed, 401, "a replayed code")
        for attempt, status in (("first", 200), ("again", 401)):
            answer = self.api.call("POST", "/login/mfa", body={
                "challenge": first_step(), "recovery_code": recovery[0]})
            expect_status(answer, status, f"a recovery code, {attempt}")

    def an_admin_without_totp_reaches_only_enrolment(self):
        session = self.sign_in("admin")
        token = session["access_token"]
        held = session.get("second_factor_enrolment_required") is True
        expect(held == self.admins_need_totp,
               f"second_factor_enrolment_required {held}, MfaRequiredRoles "
               f"{'includes' if self.admins_need_totp else 'excludes'} admin")
        # Twice: the second answer comes from API Gateway's cache of the first.
        for attempt in ("first", "cached"):
            listed = self.api.call("GET", "/users?limit=1", token)
            expect_status(listed, 403 if held else 200, f"GET /users ({attempt})")
        if held:
            started = self.api.call("POST", "/mfa/totp", token,
                                    {"password": self.users["admin"]["password"]})
            expect_status(started, 200, "POST /mfa/totp, which stays open to it")
        expect_status(self.api.call("POST", "/logout", token), 204, "POST /logout")

    def password_change_holds_under_the_authorizer_cache(self):
        user = self.users["customer"]
        old_token = self.sign_in("customer")["access_token"]
        path = f"/users/{user['id']}"
        expect_status(self.api.call("GET", path, old_token), 200, "before the change")
        new_password = f"{secrets.token_urlsafe(12)}-Changed"
        changed = self.api.call(
            "POST", "/password", old_token,
            {"current_password": user["password"], "new_password": new_password})
        expect_status(changed, 200, "POST /password")
        user["password"] = new_password
        expect_status(self.api.call("GET", path, old_token), 401, "the token from before")
        expect_status(self.api.call("GET", path, changed.json["access_token"]), 200,
                      "the token the change answered")
        expect_status(self.api.login(user["username"], "not-the-new-one-123"), 401,
                      "a wrong password")
        self.sign_in("customer")

    def cors_answers_the_configured_origin(self):
        origin = self.env["CORS_ORIGIN"]
        preflight = self.api.call("OPTIONS", "/login", headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        })
        expect(200 <= preflight.status < 300, f"preflight: {preflight!r}")
        allowed = preflight.headers.get("access-control-allow-origin")
        expect(allowed in (origin, "*"), f"preflight allows {allowed!r}")
        refused = self.api.call("GET", "/users", headers={"origin": origin})
        expect_unauthorized(refused, "the gateway's 401")
        allowed = refused.headers.get("access-control-allow-origin")
        expect(allowed in (origin, "*"),
               f"the gateway's 401 carries Access-Control-Allow-Origin ({allowed!r}), or a "
               "browser shows its client a network error instead")

    def a_burst_meets_the_method_throttle(self):
        token = self.sign_in("customer")["access_token"]

        def change(_):
            # An invalid body: refused (400) before any password work, unless throttled.
            return self.api.call("POST", "/password", token, {"current_password": ""}).status

        with concurrent.futures.ThreadPoolExecutor(max_workers=30) as pool:
            statuses = list(pool.map(change, range(90)))
        expect(429 in statuses, f"no 429 among {sorted(set(statuses))}")
        expect(set(statuses) <= {400, 429}, f"only 400 and 429: {sorted(set(statuses))}")

    def rotation_under_traffic_fails_no_request(self):
        before = {key["kid"] for key in self.api.call("GET", "/.well-known/jwks.json").json["keys"]}
        user = self.users["customer"]
        failures, calls = [], [0]
        stop = threading.Event()
        first_token = self.sign_in("customer")["access_token"]

        def traffic():
            token = first_token
            while not stop.is_set():
                for what in ("GET /users/{id}", "POST /login"):
                    calls[0] += 1
                    try:
                        if what == "POST /login":
                            answer = self.api.login(user["username"], user["password"])
                        else:
                            answer = self.api.call("GET", f"/users/{user['id']}", token)
                        if answer.status != 200:
                            failures.append(f"{what}: {answer!r}")
                        elif what == "POST /login":
                            token = answer.json["access_token"]
                    except Exception as err:  # a request that did not even answer fails too
                        failures.append(f"{what}: {type(err).__name__}: {err}")
                time.sleep(0.2)

        worker = threading.Thread(target=traffic, daemon=True)
        worker.start()
        after = before
        try:
            rotate(self.env)
            # The JWKS route re-reads the published keys at most every 30 s; traffic goes
            # on until the new key shows there.
            deadline = time.monotonic() + (
                JWKS_SHOWS_NEW_KEY_WITHIN_SECS if self.algorithm != "HS256" else 5)
            while after == before and time.monotonic() < deadline:
                time.sleep(2)
                jwks = self.api.call("GET", "/.well-known/jwks.json")
                if jwks.status == 200:
                    after = {key["kid"] for key in jwks.json["keys"]}
        finally:
            stop.set()
            worker.join(TIMEOUT_SECS)
        if self.algorithm != "HS256":
            expect(after - before, f"a new key is published within "
                   f"{JWKS_SHOWS_NEW_KEY_WITHIN_SECS} s (before {sorted(before)}, after {sorted(after)})")
            expect(before <= after, "the keys from before stay published")
        expect(calls[0] > 0 and not failures,
               f"{len(failures)} of {calls[0]} requests failed: {failures[:3]}")

    def remove_own_users(self):
        left = []
        # A fresh token: the first one may have expired during a long run (TokenTtlSeconds).
        try:
            token = self.given_admin_session()["access_token"]
        except Failed:
            token = self.admin_token
        for user_id in self.created:
            answer = self.api.call("DELETE", f"/users/{user_id}", token)
            if answer.status not in (204, 404):
                left.append(f"{user_id}: {answer!r}")
        self.created = []
        expect(not left, f"not deleted: {left}")
        for role, user in self.users.items():
            expect_status(self.api.login(user["username"], user["password"]), 401,
                          f"the deleted {role}")

    def run(self):
        print(f"smoke: {self.api.base} (run {self.run_id})", flush=True)
        if not self.check("login: the given admin signs in", self.sign_in_as_the_given_admin):
            return
        try:
            if not self.check("users: an admin creates an admin and a customer",
                              self.create_own_users):
                return
            self.check("login: tokens carry sub, role, iss, aud, iat, exp, jti",
                       self.tokens_carry_the_claims)
            if self.algorithm == "HS256":
                print("skip  jwks: HS256 tokens have no public key to verify with", flush=True)
            elif "session" in self.users["admin"]:
                self.check("jwks: an independent verifier (PyJWT) accepts our token",
                           self.jwks_verifies_with_an_independent_verifier)
                self.check("discovery: from the issuer alone to the keys (PyJWKClient), or 404",
                           self.discovery_leads_a_verifier_from_the_issuer_to_the_keys)
            self.check("authorizer: no, malformed, forged, unsigned, tampered token: exactly 401",
                       self.refused_tokens_get_exactly_unauthorized)
            self.check("login: a wrong password and an unknown user answer alike",
                       self.wrong_password_and_unknown_user_answer_alike)
            self.check("users: an admin lists (paged) and reads users",
                       self.admin_lists_pages_and_reads_users)
            self.check("users: a customer reads itself, and nothing else (403)",
                       self.customer_reaches_only_itself)
            self.check("refresh: rotation, and a replay ends the family",
                       self.refresh_rotates_and_a_replay_ends_the_family)
            self.check("logout: the token is refused at once, cached Allow or not",
                       self.logout_holds_under_the_authorizer_cache)
            self.check("password: a change ends earlier tokens at once, cached Allow or not",
                       self.password_change_holds_under_the_authorizer_cache)
            self.check("second factor: an admin without TOTP reaches only enrolment and logout "
                       "(or everything, where MfaRequiredRoles leaves admins out)",
                       self.an_admin_without_totp_reaches_only_enrolment)
            self.check("second factor: pyotp's codes enrol and sign in; a recovery code works once",
                       self.totp_codes_of_an_independent_implementation_sign_in)
            if self.env.get("CORS_ORIGIN"):
                self.check("cors: preflight and the gateway's 401 allow the origin",
                           self.cors_answers_the_configured_origin)
            if self.env.get("EXPECT_THROTTLING") == "1":
                self.check("throttling: a burst on POST /password meets 429",
                           self.a_burst_meets_the_method_throttle)
            if self.env.get("ROTATE") == "1":
                self.check("rotation: keys rotate under traffic and no request fails",
                           self.rotation_under_traffic_fails_no_request)
        finally:
            self.check("cleanup: the suite's users are deleted", self.remove_own_users)


def rotate(env):
    command = env.get("ROTATE_COMMAND")
    if command:
        subprocess.run(command, shell=True, check=True)
        return
    import boto3  # only for a rotation through Secrets Manager

    secret_id = env["SIGNING_KEYS_SECRET"]
    client = boto3.client("secretsmanager")
    token = client.rotate_secret(SecretId=secret_id)["VersionId"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        stages = client.describe_secret(SecretId=secret_id)["VersionIdsToStages"]
        if "AWSCURRENT" in stages.get(token, []):
            return
        time.sleep(2)
    raise Failed(f"the rotation {token} did not finish within 120 s")


def main():
    env = dict(os.environ)
    missing = [name for name in ("API", "ADMIN_USERNAME", "ADMIN_PASSWORD") if not env.get(name)]
    if env.get("ROTATE") == "1" and not (env.get("ROTATE_COMMAND") or env.get("SIGNING_KEYS_SECRET")):
        missing.append("SIGNING_KEYS_SECRET (or ROTATE_COMMAND)")
    if missing:
        print(f"smoke: set {', '.join(missing)} (see the README, 'Smoke-testing a deployment')",
              file=sys.stderr)
        return 2
    # A SIGTERM (a CI timeout) still deletes the suite's users.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    smoke = Smoke(env)
    smoke.run()
    print(f"{smoke.passed} passed, {smoke.failed} failed", flush=True)
    return 1 if smoke.failed else 0


if __name__ == "__main__":
    sys.exit(main())
