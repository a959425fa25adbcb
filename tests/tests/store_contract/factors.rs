//! Second factors and sign-in challenges: enrolment, activation, spending a step, a
//! recovery code or a challenge exactly once (also in parallel), removal, and every write
//! made for a caller landing only while it stands.

use super::*;
use jwt_auth_core::crypto::recovery_codes::RecoveryCodeHash;
use jwt_auth_core::store::second_factor::{FactorState, SignInProof, SignInSpend};

/// A sign-in challenge id of its own.
fn challenge() -> String {
    jwt_auth_core::users::user::new_user_id()
}

/// Spends recovery code `code` of `user_id` with a challenge of its own: whether it was left.
async fn spend_code(store: &Arc<dyn Store>, user_id: &str, code: &RecoveryCodeHash) -> bool {
    match store
        .spend_sign_in(
            user_id,
            SignInProof::RecoveryCode(code),
            &challenge(),
            NOW + 300,
        )
        .await
        .unwrap()
    {
        SignInSpend::Spent => true,
        SignInSpend::ProofRefused => false,
        SignInSpend::ChallengeUsed => panic!("a fresh challenge was taken for used"),
    }
}

fn codes() -> Vec<RecoveryCodeHash> {
    (1..=3u8).map(|i| RecoveryCodeHash([i; 32])).collect()
}

/// A user with an active factor (`sealed-1`, step 100 spent, three codes).
async fn enrolled(subject: &Subject, username: &str) -> User {
    let user = create(subject, username).await;
    let store = &subject.store;
    assert!(
        store
            .start_enrolment(&user.id, "sealed-1", NOW + 900, NOW, Actor::Operator)
            .await
            .unwrap()
    );
    assert!(
        store
            .activate_factor(&user.id, "sealed-1", 100, &codes(), NOW, Actor::Operator)
            .await
            .unwrap()
    );
    user
}

pub(super) async fn an_enrolment_is_pending_until_confirmed_and_lapses_unconfirmed(
    subject: Subject,
) {
    let store = &subject.store;
    let user = create(&subject, "tina").await;
    assert!(store.second_factor(&user.id, NOW).await.unwrap().is_none());
    assert!(
        store
            .start_enrolment(&user.id, "sealed-1", NOW + 900, NOW, Actor::Operator)
            .await
            .unwrap()
    );
    let pending = store.second_factor(&user.id, NOW).await.unwrap().unwrap();
    assert_eq!(pending.state, FactorState::Pending);
    assert_eq!(pending.sealed_secret, "sealed-1");
    assert_eq!(pending.expires_at, Some(NOW + 900));
    // Lapsed: not there, and not confirmable.
    assert!(
        store
            .second_factor(&user.id, NOW + 900)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !store
            .activate_factor(
                &user.id,
                "sealed-1",
                100,
                &codes(),
                NOW + 900,
                Actor::Operator
            )
            .await
            .unwrap()
    );
    // A new start replaces a pending one; confirming the replaced secret fails.
    assert!(
        store
            .start_enrolment(
                &user.id,
                "sealed-2",
                NOW + 1_000,
                NOW + 100,
                Actor::Operator
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .activate_factor(
                &user.id,
                "sealed-1",
                100,
                &codes(),
                NOW + 100,
                Actor::Operator
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .activate_factor(
                &user.id,
                "sealed-2",
                100,
                &codes(),
                NOW + 100,
                Actor::Operator
            )
            .await
            .unwrap()
    );
    let active = store
        .second_factor(&user.id, NOW + 5_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(active.state, FactorState::Active);
    assert_eq!(active.last_step, Some(100));
    assert_eq!(active.expires_at, None, "an active factor does not lapse");
    let mut stored = active.recovery_codes.clone();
    stored.sort_by_key(|code| code.0);
    assert_eq!(stored, codes());
    // Active: a new enrolment is refused and changes nothing; a second confirm too.
    assert!(
        !store
            .start_enrolment(
                &user.id,
                "sealed-3",
                NOW + 2_000,
                NOW + 200,
                Actor::Operator
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .activate_factor(&user.id, "sealed-2", 200, &[], NOW + 200, Actor::Operator)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .second_factor(&user.id, NOW)
            .await
            .unwrap()
            .unwrap()
            .sealed_secret,
        "sealed-2"
    );
    if let Some(raw) = &subject.raw {
        let item = raw.item(&format!("FACTOR#{}", user.id)).await.unwrap();
        assert!(
            !item.contains_key("kind"),
            "not in the user index: {item:?}"
        );
        assert!(
            !item.contains_key("expires_at"),
            "an active factor has no TTL: {item:?}"
        );
    }
}

pub(super) async fn a_step_is_spent_once_and_never_an_earlier_one(subject: Subject) {
    let store = &subject.store;
    let user = enrolled(&subject, "uma").await;
    assert!(
        !store.spend_step(&user.id, "sealed-1", 100).await.unwrap(),
        "spent at activation"
    );
    assert!(!store.spend_step(&user.id, "sealed-1", 99).await.unwrap());
    assert!(
        !store
            .spend_step(&user.id, "another-secret", 101)
            .await
            .unwrap()
    );
    assert!(store.spend_step(&user.id, "sealed-1", 101).await.unwrap());
    assert!(
        !store.spend_step(&user.id, "sealed-1", 101).await.unwrap(),
        "replayed"
    );
    assert!(store.spend_step(&user.id, "sealed-1", 103).await.unwrap());
    assert!(!store.spend_step(&user.id, "sealed-1", 102).await.unwrap());
    assert_eq!(
        store
            .second_factor(&user.id, NOW)
            .await
            .unwrap()
            .unwrap()
            .last_step,
        Some(103)
    );
    // Nothing to spend without an active factor.
    let other = create(&subject, "vera").await;
    assert!(!store.spend_step(&other.id, "sealed-1", 500).await.unwrap());
    store
        .start_enrolment(&other.id, "sealed-1", NOW + 900, NOW, Actor::Operator)
        .await
        .unwrap();
    assert!(
        !store.spend_step(&other.id, "sealed-1", 500).await.unwrap(),
        "pending"
    );
}

pub(super) async fn parallel_spends_of_one_step_or_one_code_have_exactly_one_winner(
    subject: Subject,
) {
    let user = enrolled(&subject, "wanda").await;
    let steps: Vec<_> = (0..RACERS)
        .map(|_| {
            let store = Arc::clone(&subject.store);
            let id = user.id.clone();
            tokio::spawn(async move { store.spend_step(&id, "sealed-1", 200).await.unwrap() })
        })
        .collect();
    let codes_spent: Vec<_> = (0..RACERS)
        .map(|_| {
            let store = Arc::clone(&subject.store);
            let id = user.id.clone();
            tokio::spawn(async move { spend_code(&store, &id, &RecoveryCodeHash([2; 32])).await })
        })
        .collect();
    let mut step_wins = 0;
    for task in steps {
        step_wins += usize::from(task.await.unwrap());
    }
    let mut code_wins = 0;
    for task in codes_spent {
        code_wins += usize::from(task.await.unwrap());
    }
    assert_eq!((step_wins, code_wins), (1, 1));
    let left = subject
        .store
        .second_factor(&user.id, NOW)
        .await
        .unwrap()
        .unwrap()
        .recovery_codes;
    assert_eq!(left.len(), 2);
    assert!(!left.contains(&RecoveryCodeHash([2; 32])));
}

pub(super) async fn recovery_codes_are_spent_one_by_one_until_none_is_left(subject: Subject) {
    let store = &subject.store;
    let user = enrolled(&subject, "xena").await;
    assert!(!spend_code(store, &user.id, &RecoveryCodeHash([9; 32])).await);
    for code in codes() {
        assert!(spend_code(store, &user.id, &code).await);
        assert!(!spend_code(store, &user.id, &code).await);
    }
    let factor = store.second_factor(&user.id, NOW).await.unwrap().unwrap();
    assert!(factor.recovery_codes.is_empty());
    assert_eq!(factor.state, FactorState::Active, "the factor stays on");
}

pub(super) async fn a_removed_factor_is_gone_and_enrolment_starts_afresh(subject: Subject) {
    let store = &subject.store;
    let user = enrolled(&subject, "yara").await;
    store
        .remove_factor(&user.id, Actor::Operator)
        .await
        .unwrap();
    assert!(store.second_factor(&user.id, NOW).await.unwrap().is_none());
    assert!(!store.spend_step(&user.id, "sealed-1", 900).await.unwrap());
    assert!(!spend_code(store, &user.id, &codes()[0]).await);
    store
        .remove_factor(&user.id, Actor::Operator)
        .await
        .unwrap();
    assert!(
        store
            .start_enrolment(&user.id, "sealed-9", NOW + 900, NOW, Actor::Operator)
            .await
            .unwrap()
    );
    if let Some(raw) = &subject.raw {
        let item = raw.item(&format!("FACTOR#{}", user.id)).await.unwrap();
        assert_eq!(
            number(&item, "expires_at"),
            NOW + 900,
            "a pending factor expires by TTL"
        );
    } // A deleted user's factor goes with it.
    let gone = enrolled(&subject, "yves").await;
    store.delete_user(&gone.id, Actor::Operator).await.unwrap();
    assert!(store.second_factor(&gone.id, NOW).await.unwrap().is_none());
    if let Some(raw) = &subject.raw {
        assert!(raw.item(&format!("FACTOR#{}", gone.id)).await.is_none());
    }
}

/// A challenge is spent once, with its proof, in one write: of parallel second steps with
/// one challenge exactly one lands; a used challenge spends nothing, not even a right proof
/// (a double submit wastes no code); a refused proof leaves its challenge unused.
pub(super) async fn a_challenge_is_spent_once_with_its_proof(subject: Subject) {
    let store = &subject.store;
    let user = enrolled(&subject, "zelda").await;
    let spends: Vec<_> = (0..RACERS as u64)
        .map(|racer| {
            let store = Arc::clone(store);
            let id = user.id.clone();
            tokio::spawn(async move {
                let proof = SignInProof::Step {
                    sealed_secret: "sealed-1",
                    step: 300 + racer,
                };
                store
                    .spend_sign_in(&id, proof, "challenge-1", NOW + 300)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in spends {
        outcomes.push(task.await.unwrap());
    }
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == SignInSpend::Spent)
            .count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, SignInSpend::Spent | SignInSpend::ChallengeUsed)),
        "{outcomes:?}"
    );
    let after_race = store.second_factor(&user.id, NOW).await.unwrap().unwrap();
    // The used challenge with a recovery code that is left: nothing spent.
    assert_eq!(
        store
            .spend_sign_in(
                &user.id,
                SignInProof::RecoveryCode(&codes()[0]),
                "challenge-1",
                NOW + 300
            )
            .await
            .unwrap(),
        SignInSpend::ChallengeUsed
    );
    let factor = store.second_factor(&user.id, NOW).await.unwrap().unwrap();
    assert_eq!(
        factor.recovery_codes, after_race.recovery_codes,
        "no code wasted"
    );
    assert_eq!(factor.last_step, after_race.last_step);
    // A refused proof leaves its challenge for a right one.
    let stale = SignInProof::Step {
        sealed_secret: "sealed-1",
        step: 1,
    };
    assert_eq!(
        store
            .spend_sign_in(&user.id, stale, "challenge-2", NOW + 300)
            .await
            .unwrap(),
        SignInSpend::ProofRefused
    );
    assert_eq!(
        store
            .spend_sign_in(
                &user.id,
                SignInProof::RecoveryCode(&codes()[0]),
                "challenge-2",
                NOW + 300
            )
            .await
            .unwrap(),
        SignInSpend::Spent
    );
    if let Some(raw) = &subject.raw {
        let item = raw.item("CHALLENGE#challenge-1").await.unwrap();
        assert_eq!(number(&item, "expires_at"), NOW + 300, "expires by TTL");
    }
}

pub(super) async fn factor_writes_land_only_while_their_caller_stands(subject: Subject) {
    let store = &subject.store;
    let user = create(&subject, "zoe").await;
    let as_zoe = Actor::Caller(standing(&user, "j1", "s1"));
    assert!(
        store
            .start_enrolment(&user.id, "sealed-1", NOW + 900, NOW, as_zoe)
            .await
            .unwrap()
    );
    // Logged out everywhere (another session): this caller no longer stands.
    store
        .revoke_all_tokens(&user.id, Actor::Operator)
        .await
        .unwrap();
    assert!(is_caller_revoked(
        store
            .activate_factor(&user.id, "sealed-1", 100, &codes(), NOW, as_zoe)
            .await
    ));
    assert_eq!(
        store
            .second_factor(&user.id, NOW)
            .await
            .unwrap()
            .unwrap()
            .state,
        FactorState::Pending,
        "nothing written"
    );
    assert!(is_caller_revoked(
        store
            .start_enrolment(&user.id, "sealed-2", NOW + 900, NOW, as_zoe)
            .await
    ));
    assert!(is_caller_revoked(
        store.remove_factor(&user.id, as_zoe).await
    ));
    assert_eq!(
        store
            .second_factor(&user.id, NOW)
            .await
            .unwrap()
            .unwrap()
            .sealed_secret,
        "sealed-1"
    );
}
