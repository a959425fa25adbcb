#!/usr/bin/env python3
"""`make deploy-local`: `template.yaml` deployed through CloudFormation into an AWS emulator
(MiniStack, on a free loopback port, offline, no Docker), then `make smoke` against it.

1. MiniStack starts with `AWS_ENDPOINT_URL` pointing at itself (its functions' SDKs then
   call it, not AWS).
2. The x86_64 build of `make sam-local` (`.aws-sam/build-x86_64`) is deployed with
   `aws cloudformation package` and `deploy`, the way `sam deploy` does it, minus the
   resources the emulator does not know (each named in the output, see EMULATOR_GAPS).
3. The first key set: Secrets Manager's rotation is a stub there, so the rotation function's
   four steps are invoked as Secrets Manager invokes them (`python deploy-local.py rotate`
   does one rotation; the smoke suite's ROTATE_COMMAND).
4. A bootstrap admin through the CLI (`jwt-auth users create`); with `TokenIssuer` left to
   its default, tokens carry the ApiUrl (the SSM parameter the stack writes). Then the
   two-step issuer switch to the URL the emulator serves the API at (an earlier token
   still accepted). The admin, held to enrolment by MfaRequiredRoles' default (403 on
   everything else), turns TOTP on and signs in in two steps. Then the smoke suite, with
   CORS, OIDC discovery, a key rotation under traffic and the authorizer cache on.
5. The example stack (`examples/orders`) deployed beside it, importing its authorizer and
   registering its permissions document in SSM, and its routes called as each role: the
   authorizer reads the document by the API's real id.
6. The suite must also fail when it should: the authorizer's audience is broken (on that
   function alone) and the suite is run again; it must report failures.
Everything is stopped and removed at the end, also when a step fails.
"""

import base64
import hashlib
import hmac
import json
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import boto3
from awscli.customizations.cloudformation.yamlhelper import yaml_dump, yaml_parse

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".tools"
BUILT = ROOT / ".aws-sam" / "build-x86_64"
BUILT_ORDERS = ROOT / ".aws-sam" / "build-orders-x86_64"
# The example's AuthStackName default: MiniStack's SAM transform resolves the import in the
# orders API's Auth (FunctionArn) with the parameter's default, not the value deployed.
STACK = "lambda-jwt-auth"
ORDERS_STACK = "orders-emulated"
CORS_ORIGIN = "https://app.example.com"
ROTATION_STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
# No step may hang CI: the emulator answers in seconds, the smoke suite in a few minutes.
STEP_TIMEOUT_SECS = 300

# Resources of template.yaml the emulator cannot create, and why; a deploy on AWS has them.
EMULATOR_GAPS = {
    "AWS::SecretsManager::RotationSchedule": "unknown to MiniStack (the change set is "
    "refused); its first rotation is run here by invoking the rotation function",
    "AWS::CloudWatch::Alarm with metric math": "MiniStack alarms take MetricName and "
    "Namespace only",
}


def say(message):
    print(f"deploy-local: {message}", flush=True)


def emulator_gap(resource):
    kind = resource["Type"]
    if kind == "AWS::SecretsManager::RotationSchedule":
        return kind
    if kind == "AWS::CloudWatch::Alarm" and "Metrics" in resource.get("Properties", {}):
        return "AWS::CloudWatch::Alarm with metric math"
    return None


def emulator_template(built=BUILT):
    """The built template without what the emulator cannot create, beside it (its CodeUri
    paths are relative)."""
    template = yaml_parse((built / "template.yaml").read_text())
    for name, resource in list(template["Resources"].items()):
        gap = emulator_gap(resource)
        if gap:
            del template["Resources"][name]
            say(f"left out for the emulator: {name} ({gap}: {EMULATOR_GAPS[gap]})")
    path = built / "emulator-template.yaml"
    path.write_text(yaml_dump(template))
    return path


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_ministack(port, work, log):
    env = dict(
        os.environ,
        # Its function code, state and pid file inside this run's directory, removed after.
        TMPDIR=str(work),
        STATE_DIR=str(work / "state"),
        GATEWAY_PORT=str(port),
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        BIND_HOST="127.0.0.1",
        IOT_MTLS_ENABLED="0",
    )
    process = subprocess.Popen(
        [str(TOOLS / "venv-ministack" / "bin" / "ministack")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"MiniStack exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_ministack/health", timeout=2):
                return process
        except OSError:
            time.sleep(0.3)
    raise SystemExit("MiniStack did not become healthy within 60 s")


def aws(*args):
    done = subprocess.run([str(TOOLS / "venv-ministack" / "bin" / "aws"), *args],
                          capture_output=True, text=True, timeout=STEP_TIMEOUT_SECS)
    if done.returncode != 0:
        print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
        raise subprocess.CalledProcessError(done.returncode, args[:2])


def deploy(work, built=BUILT, stack_name=STACK, parameters=()):
    template = emulator_template(built)
    packaged = work / f"packaged-{stack_name}.yaml"
    bucket = "jwt-auth-deploy-local"
    s3 = boto3.client("s3")
    if bucket not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
        s3.create_bucket(Bucket=bucket)
    aws("cloudformation", "package", "--template-file", str(template),
        "--s3-bucket", bucket, "--output-template-file", str(packaged))
    started = time.monotonic()
    try:
        # Through the bucket, as `sam deploy --resolve-s3` does: a template body is limited
        # to 51,200 bytes, and this one is larger.
        aws("cloudformation", "deploy", "--template-file", str(packaged),
            "--s3-bucket", bucket, "--stack-name", stack_name,
            "--capabilities", "CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND",
            "--parameter-overrides", "Architecture=x86_64", *parameters)
    except subprocess.CalledProcessError:
        events = boto3.client("cloudformation").describe_stack_events(StackName=stack_name)
        for event in events["StackEvents"]:
            if "FAILED" in event["ResourceStatus"]:
                say(f"{event['LogicalResourceId']}: {event.get('ResourceStatusReason')}")
        raise
    stack = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    say(f"stack {stack_name}: {stack['StackStatus']} in {time.monotonic() - started:.1f} s")
    return {output["OutputKey"]: output["OutputValue"] for output in stack["Outputs"]}


def call(base, method, path, token=None, body=None):
    """One request; its status and JSON body (None when empty or not JSON)."""
    headers = {}
    data = None
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


def wire_http_api(api_id, template, ttl, logical_id="OrdersHttpApi"):
    """MiniStack creates an HTTP API from CloudFormation without importing its OpenAPI
    `Body`, which is where SAM puts an `AWS::Serverless::HttpApi`'s routes, integration and
    authorizer: the API has no route and answers 404. So they are made here through the
    API Gateway v2 API, from the template's own `HttpApi` events and authorizer, as the Body
    would define them (nothing is done when the API already has routes)."""
    v2 = boto3.client("apigatewayv2")
    if v2.get_routes(ApiId=api_id).get("Items"):
        return
    resources = yaml_parse(template.read_text())["Resources"]
    api = resources[logical_id]["Properties"]
    auth_name = api["Auth"]["DefaultAuthorizer"]
    auth = api["Auth"]["Authorizers"][auth_name]
    region = boto3.session.Session().region_name
    authorizer_arn = boto3.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    authorizer_arn = next(o["OutputValue"] for o in authorizer_arn["Outputs"]
                          if o["OutputKey"] == "AuthorizerFunctionArn")
    # The function whose HttpApi events name this API.
    function_id, events = next(
        (name, resource["Properties"]["Events"]) for name, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
        and any(event["Properties"].get("ApiId") == {"Ref": logical_id}
                for event in resource["Properties"].get("Events", {}).values()))
    function = boto3.client("cloudformation").describe_stack_resource(
        StackName=ORDERS_STACK, LogicalResourceId=function_id)["StackResourceDetail"]
    function_arn = boto3.client("lambda").get_function(
        FunctionName=function["PhysicalResourceId"])["Configuration"]["FunctionArn"]
    if "JwtConfiguration" in auth:
        # A native JWT authorizer: API Gateway verifies the token itself from the issuer.
        jwt = auth["JwtConfiguration"]
        issuer, audience = imported(jwt["issuer"]), [imported(a) for a in jwt["audience"]]
        authorizer = v2.create_authorizer(
            ApiId=api_id, Name=auth_name, AuthorizerType="JWT",
            IdentitySource=[auth.get("IdentitySource", "$request.header.Authorization")],
            JwtConfiguration={"Issuer": issuer, "Audience": audience})
        authorization = {"AuthorizationType": "JWT", "AuthorizerId": authorizer["AuthorizerId"]}
    else:
        authorizer = v2.create_authorizer(
            ApiId=api_id, Name=auth_name, AuthorizerType="REQUEST",
            AuthorizerUri=f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/"
                          f"{authorizer_arn}/invocations",
            AuthorizerPayloadFormatVersion=auth["AuthorizerPayloadFormatVersion"],
            EnableSimpleResponses=auth["EnableSimpleResponses"],
            IdentitySource=[f"$request.header.{h}" for h in auth["Identity"]["Headers"]],
            AuthorizerResultTtlInSeconds=ttl)
        authorization = {"AuthorizationType": "CUSTOM", "AuthorizerId": authorizer["AuthorizerId"]}
    integration = v2.create_integration(
        ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri=function_arn,
        PayloadFormatVersion="2.0")
    for event in events.values():
        props = event["Properties"]
        if event["Type"] != "HttpApi" or props["ApiId"] != {"Ref": logical_id}:
            continue
        public = props.get("Auth", {}).get("Authorizer") == "NONE"
        v2.create_route(
            ApiId=api_id, RouteKey=f"{props['Method'].upper()} {props['Path']}",
            Target=f"integrations/{integration['IntegrationId']}",
            **({} if public else authorization))
    if not any(stage["StageName"] == "$default"
               for stage in v2.get_stages(ApiId=api_id).get("Items", [])):
        v2.create_stage(ApiId=api_id, StageName="$default", AutoDeploy=True)
    say(f"HTTP API {logical_id} {api_id}: routes, integration and authorizer made through the v2 API "
        "(MiniStack does not import an HttpApi's OpenAPI body)")


def imported(value):
    """A template value: a string, or `Fn::ImportValue` of one of the auth stack's exports."""
    if isinstance(value, str):
        return value
    name = value["Fn::ImportValue"]["Fn::Sub"].replace("${AuthStackName}", STACK)
    exports = boto3.client("cloudformation").list_exports()["Exports"]
    return next(export["Value"] for export in exports if export["Name"] == name)


def orders_checks(endpoint, api, admin, issuer):
    """The orders stack deployed against this one, and its routes called as each role.
    Returns the failures (empty when every check held)."""
    outputs = deploy(Path(tempfile.mkdtemp(prefix="deploy-local-orders-")), BUILT_ORDERS,
                     ORDERS_STACK, (f"AuthStackName={STACK}", "AuthorizerCacheTtlSeconds=60",
                                    "JwtAuthorizerApi=true"))
    api_id = outputs["OrdersApiUrl"].split("//", 1)[1].split(".", 1)[0]
    stage = outputs["OrdersApiUrl"].rstrip("/").rsplit("/", 1)[1]
    orders = f"{endpoint}/_aws/execute-api/{api_id}/{stage}"
    failures = []

    def expect(what, got, wanted):
        mark = "ok  " if got == wanted else "FAIL"
        say(f"  {mark} {what}: {got}" + ("" if got == wanted else f" (expected {wanted})"))
        if got != wanted:
            failures.append(what)

    def login(name, secret):
        status, body = call(api, "POST", "/login", body={"username": name, "password": secret})
        if status != 200:
            raise SystemExit(f"orders checks: {name} cannot sign in ({status} {body})")
        return body["access_token"], body["user"]["id"]

    admin_token = admin.sign_in()["access_token"]
    people = {}
    for name, role in (("orders-alice", "customer"), ("orders-sam", "support")):
        secret = f"passphrase-{uuid.uuid4().hex}"
        status, body = call(api, "POST", "/users", admin_token,
                            {"username": name, "role": role, "password": secret})
        expect(f"the admin creates {name} ({role})", status, 201)
        people[name] = login(name, secret)
    alice, alice_id = people["orders-alice"]
    sam, _ = people["orders-sam"]
    # The REST API, then the HTTP API (payload 2.0, the same authorizer and document):
    # each call places one more order of alice's.
    http_api_id = outputs["OrdersHttpApiUrl"].split("//", 1)[1].split(".", 1)[0]
    wire_http_api(http_api_id, ROOT / "examples" / "orders" / "template.yaml", 60)
    for label, base in (("REST", orders), ("HTTP API", f"{endpoint}/_aws/execute-api/{http_api_id}/$default")):
        placed = 1 if label == "REST" else 2
        say(f"orders {label} {base}")
        expect(f"{label}: GET /health, no token", call(base, "GET", "/health")[0], 200)
        expect(f"{label}: GET /orders, no token", call(base, "GET", "/orders")[0], 401)
        status, body = call(base, "POST", "/orders", alice, {"item": "tea", "quantity": 2})
        expect(f"{label}: a customer places an order", status, 201)
        expect(f"{label}: the order is the caller's",
               (body or {}).get("order", {}).get("customer_id"), alice_id)
        expect(f"{label}: a customer lists every order", call(base, "GET", "/orders", alice)[0], 403)
        status, body = call(base, "GET", f"/customers/{alice_id}/orders", alice)
        expect(f"{label}: a customer reads its own orders",
               (status, len((body or {}).get("orders", []))), (200, placed))
        expect(f"{label}: a customer reads another's orders",
               call(base, "GET", f"/customers/{'0' * 32}/orders", alice)[0], 403)
        status, body = call(base, "GET", "/orders", sam)
        expect(f"{label}: support lists every order",
               (status, len((body or {}).get("orders", []))), (200, placed))
        expect(f"{label}: support reads a customer's orders",
               call(base, "GET", f"/customers/{alice_id}/orders", sam)[0], 200)

    # A native JWT authorizer (API Gateway's own, here MiniStack's): it starts from the
    # issuer alone (discovery, then the JWKS), verifies RS256, `iss` and `aud`, and our
    # function re-checks the caller (roles from its document, revocation at once).
    jwt_api_id = outputs["OrdersJwtApiUrl"].split("//", 1)[1].split(".", 1)[0]
    wire_http_api(jwt_api_id, ROOT / "examples" / "orders" / "template.yaml", 0,
                  logical_id="OrdersJwtApi")
    base = f"{endpoint}/_aws/execute-api/{jwt_api_id}/$default"
    say(f"orders JWT authorizer API {base} (issuer {issuer})")
    expect("JWT: GET /health, no token", call(base, "GET", "/health")[0], 200)
    expect("JWT: GET /orders, no token", call(base, "GET", "/orders")[0], 401)
    expect("JWT: a token that is not ours", call(base, "GET", "/orders", "e30.e30.e30")[0], 401)
    status, body = call(base, "POST", "/orders", alice, {"item": "tea", "quantity": 2})
    expect("JWT: a customer places an order", status, 201)
    expect("JWT: a customer lists every order (the function's own check)",
           call(base, "GET", "/orders", alice)[0], 403)
    status, body = call(base, "GET", f"/customers/{alice_id}/orders", alice)
    expect("JWT: a customer reads its own orders",
           (status, len((body or {}).get("orders", []))), (200, 3))
    status, body = call(base, "GET", "/orders", sam)
    expect("JWT: support lists every order", (status, len((body or {}).get("orders", []))), (200, 3))
    # Logged out: the JWT authorizer still accepts the token until its exp; the
    # function's re-check refuses it at once.
    expect("alice logs out", call(api, "POST", "/logout", alice)[0], 204)
    expect("JWT: a logged-out token (the function's re-check)",
           call(base, "GET", f"/customers/{alice_id}/orders", alice)[0], 401)
    return failures


def physical_id(logical_id):
    resource = boto3.client("cloudformation").describe_stack_resource(
        StackName=STACK, LogicalResourceId=logical_id)
    return resource["StackResourceDetail"]["PhysicalResourceId"]


def rotate():
    """One rotation of the signing keys, step by step, as Secrets Manager runs it."""
    function = physical_id("KeyRotationFunction")
    secret = physical_id("SigningKeysSecret")
    token = str(uuid.uuid4())
    client = boto3.client("lambda")
    for step in ROTATION_STEPS:
        answer = client.invoke(FunctionName=function, Payload=json.dumps(
            {"SecretId": secret, "ClientRequestToken": token, "Step": step}))
        if answer.get("FunctionError"):
            raise SystemExit(f"rotation {step}: {answer['Payload'].read().decode()}")


def totp_code(secret, step):
    """RFC 6238's code of `secret` (base32) for a 30 s step: HMAC-SHA-1, 6 digits."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = int.from_bytes(digest[offset:offset + 4], "big") & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


class Admin:
    """The bootstrap admin: its password, then its TOTP secret once enrolled (admins must
    sign in with a second factor: MfaRequiredRoles' default)."""

    def __init__(self, api, username, password):
        self.api, self.username, self.password = api, username, password
        self.secret = None
        self.spent_step = -1

    def code(self):
        """A code for a step not spent yet: the step after the current one (accepted too,
        and the one the smoke suite, another client of this admin, also reaches for
        first), or the next, waited for."""
        while True:
            now_step = int(time.time()) // 30
            step = max(now_step + 1, self.spent_step + 1)
            if step <= now_step + 1:
                self.spent_step = step
                return totp_code(self.secret, step)
            time.sleep(1)

    def sign_in(self):
        """The admin's token answer (through the second step once it has TOTP on; a step
        another client spent is followed by the next)."""
        status, body = call(self.api, "POST", "/login",
                            body={"username": self.username, "password": self.password})
        if status != 200:
            raise SystemExit(f"the admin cannot sign in ({status} {body})")
        if body.get("mfa_required"):
            challenge = body["challenge"]
            for _ in range(3):
                status, body = call(self.api, "POST", "/login/mfa",
                                    body={"challenge": challenge, "code": self.code()})
                if status != 401:
                    break
            if status != 200:
                raise SystemExit(f"the admin's second step failed ({status} {body})")
        return body

    def enrol(self):
        """Held to enrolment until it has a second factor: the gateway refuses it every
        other route (403, not the 401 of a refused token); it turns TOTP on."""
        held = self.sign_in()
        token = held["access_token"]
        if held.get("second_factor_enrolment_required") is not True:
            raise SystemExit(f"the admin is not held to enrolment: {sorted(held)}")
        status, _ = call(self.api, "GET", "/users?limit=1", token)
        if status != 403:
            raise SystemExit(f"GET /users by an admin without TOTP answered {status}, not 403")
        status, body = call(self.api, "POST", "/mfa/totp", token, {"password": self.password})
        if status != 200:
            raise SystemExit(f"POST /mfa/totp answered {status} {body}")
        self.secret = body["secret"]
        status, body = call(self.api, "POST", "/mfa/totp/confirm", token, {"code": self.code()})
        if status != 200:
            raise SystemExit(f"POST /mfa/totp/confirm answered {status} {body}")
        token = self.sign_in()["access_token"]
        status, _ = call(self.api, "GET", "/users?limit=1", token)
        if status != 200:
            raise SystemExit(f"GET /users after the two-step sign-in answered {status}")
        say("second factor: the admin was held to enrolment (403), enrolled, and signs in "
            "in two steps (200)")


def create_admin(table, username, password):
    subprocess.run(
        [str(ROOT / "target" / "debug" / "jwt-auth"), "users", "--table", table, "create",
         "--username", username, "--role", "admin", "--password-stdin"],
        input=f"{password}\n", text=True, check=True, timeout=STEP_TIMEOUT_SECS)


def smoke(api, username, password, **extra):
    """Runs the suite (its output shown as it goes); its exit status and output."""
    env = dict(os.environ, API=api, ADMIN_USERNAME=username, ADMIN_PASSWORD=password, **extra)
    done = subprocess.run(
        [str(TOOLS / "venv-smoke" / "bin" / "python"), str(ROOT / "scripts" / "smoke.py")],
        env=env, stdout=subprocess.PIPE, text=True, timeout=2 * STEP_TIMEOUT_SECS)
    print(done.stdout, end="", flush=True)
    return done.returncode, done.stdout


def default_issuer_checks(api, username, password, outputs):
    """With TokenIssuer left empty, tokens carry the stack's ApiUrl (read by the functions
    from the SSM parameter the stack writes) and the authorizer requires it. Returns a
    token of that issuer."""
    parameter = boto3.client("ssm").get_parameter(Name=f"/{STACK}/token-issuer")["Parameter"]
    if parameter["Value"] != outputs["ApiUrl"] or outputs["TokenIssuerValue"] != outputs["ApiUrl"]:
        raise SystemExit(f"the issuer parameter {parameter['Value']!r} / output "
                         f"{outputs['TokenIssuerValue']!r} is not the ApiUrl {outputs['ApiUrl']!r}")
    status, body = call(api, "POST", "/login", body={"username": username, "password": password})
    if status != 200:
        raise SystemExit(f"the admin cannot sign in with the default issuer ({status} {body})")
    token = body["access_token"]
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    if claims["iss"] != outputs["ApiUrl"]:
        raise SystemExit(f"iss {claims['iss']!r}, expected the ApiUrl {outputs['ApiUrl']!r}")
    # The admin has no second factor yet: the authorizer takes the token but holds it to
    # enrolment (403 on GET /users; a refused token would be 401).
    status, _ = call(api, "GET", "/users?limit=1", token)
    if status != 403:
        raise SystemExit(f"a held token of the default issuer answered {status}, not 403")
    say(f"default issuer: tokens carry the ApiUrl {claims['iss']} and the authorizer takes them")
    return token


def break_authorizer_audience():
    """The authorizer alone expects another audience: every signed-in route must fail."""
    client = boto3.client("lambda")
    function = physical_id("AuthorizerFunction")
    variables = client.get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    variables["JWT_AUDIENCE"] = "not-the-audience-login-issues"
    client.update_function_configuration(FunctionName=function,
                                         Environment={"Variables": variables})
    client.get_waiter("function_updated_v2").wait(
        FunctionName=function, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def main():
    if sys.argv[1:] == ["rotate"]:
        rotate()
        return 0
    for built in (BUILT, BUILT_ORDERS):
        if not (built / "template.yaml").exists():
            raise SystemExit(f"no build in {built}: run scripts/build-x86_64.sh first")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    # This script, the CLI and the smoke suite's rotation all talk to the emulator.
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="deploy-local",
                      AWS_SECRET_ACCESS_KEY="deploy-local", AWS_DEFAULT_REGION="us-east-1",
                      AWS_REGION="us-east-1")
    work = Path(tempfile.mkdtemp(prefix="deploy-local-"))
    log = open(work / "ministack.log", "w")
    # A SIGTERM (a CI timeout, kill) tears down as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ministack = None
    status = 1
    try:
        ministack = start_ministack(port, work, log)
        say(f"MiniStack on {endpoint}")
        # RS256, for the orders stack's native JWT authorizer (RSA only, as on AWS).
        parameters = (f"CorsAllowOrigin={CORS_ORIGIN}", "Roles=admin,customer,support",
                      "SigningAlgorithm=RS256")
        outputs = deploy(work, parameters=parameters)
        api_id = outputs["ApiUrl"].split("//", 1)[1].split(".", 1)[0]
        stage = outputs["ApiUrl"].rstrip("/").rsplit("/", 1)[1]
        api = f"{endpoint}/_aws/execute-api/{api_id}/{stage}"
        rotate()
        say("first key set written by the rotation function")
        username, password = "deploy-local-root", f"bootstrap-{uuid.uuid4().hex}"
        create_admin(outputs["UsersTableName"], username, password)
        # TokenIssuer left to its default: the API's URL, which the stack writes to an SSM
        # parameter that login and the authorizer read (a function's environment cannot
        # name its own API's URL). On AWS that URL is also where discovery is served; here
        # the emulator serves the API elsewhere, so the issuer is switched next.
        early_token = default_issuer_checks(api, username, password, outputs)
        # The issuer becomes the URL the emulator serves the API at, with the first issuer
        # kept as PreviousTokenIssuer: the two-step switch the README describes, and what
        # OIDC discovery needs (loopback http, this emulator's).
        outputs = deploy(work, parameters=(*parameters, f"TokenIssuer={api}",
                                           f"PreviousTokenIssuer={outputs['ApiUrl']}"))
        say(f"the issuer is the API's URL as served here: {outputs['TokenIssuerValue']}")
        status, _ = call(api, "GET", "/users?limit=1", early_token)
        if status != 403:
            say(f"a token of the previous issuer was refused after the switch ({status})")
            return 1
        say("a token of the previous issuer still works after the switch (held to enrolment)")
        admin = Admin(api, username, password)
        admin.enrol()
        if os.environ.get("KEEP") == "1":
            say(f"KEEP=1: the stack stays up until Ctrl-C. API={api}\n"
                f"  AWS_ENDPOINT_URL={endpoint} ADMIN_USERNAME={username} "
                f"ADMIN_PASSWORD={password} ADMIN_TOTP_SECRET={admin.secret} "
                f"USERS_TABLE={outputs['UsersTableName']}")
            try:
                signal.pause()
            except KeyboardInterrupt:
                return 0
        say(f"smoke suite against {api}")
        rotate_command = " ".join(shlex.quote(str(part)) for part in (
            TOOLS / "venv-ministack" / "bin" / "python", Path(__file__).resolve(), "rotate"))
        # No CORS_ORIGIN: MiniStack drops the integration responses of the OPTIONS mock
        # integrations and the gateway responses SAM writes into the API definition, so
        # neither preflights nor a gateway 401 carry CORS headers there (make run and AWS do).
        say("CORS is not checked here: MiniStack keeps neither the preflights' mock "
            "integration responses nor the gateway responses")
        passed, _ = smoke(api, username, password, ROTATE="1", ROTATE_COMMAND=rotate_command,
                          TOKEN_ISSUER=api, ADMIN_TOTP_SECRET=admin.secret)
        if passed != 0:
            say("the smoke suite failed against the emulator deployment")
            return 1
        say(f"the example stack {ORDERS_STACK} behind {STACK}'s authorizer")
        failed = orders_checks(endpoint, api, admin, issuer=api)
        if failed:
            say(f"the orders stack failed: {', '.join(failed)}")
            return 1
        say("and against a broken deployment (the authorizer's JWT_AUDIENCE changed), "
            "where it must fail")
        break_authorizer_audience()
        status_broken, output = smoke(api, username, password, TOKEN_ISSUER=api,
                                      ADMIN_TOTP_SECRET=admin.secret)
        # Failed for the right reason: sign-in (no authorizer) works, every signed-in route
        # is refused; not a crash or a missing setting (exit status 2).
        expected = status_broken == 1 and "ok    login: the given admin signs in" in output \
            and "FAIL  users: an admin creates an admin and a customer" in output
        if not expected:
            say(f"the smoke suite did not fail as it should there (exit status {status_broken})")
            return 1
        say("the smoke suite failed there, as it should")
        status = 0
        return 0
    finally:
        if ministack is not None:
            os.killpg(ministack.pid, signal.SIGTERM)
            try:
                ministack.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(ministack.pid, signal.SIGKILL)
        log.close()
        if status != 0:
            kept = ROOT / ".local" / "deploy-local.log"
            kept.parent.mkdir(exist_ok=True)
            kept.write_text((work / "ministack.log").read_text())
            say(f"MiniStack's log kept in {kept}")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
