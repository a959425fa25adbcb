//! Unit tests of the rotation's set arithmetic: new keys, retirement, the cap, revocation.

use super::*;

const HOUR: u64 = 3600;

#[test]
fn a_rotation_adds_a_current_key_retires_the_old_one_and_drops_the_retired() {
    let first = rotate(
        None,
        SigningAlgorithm::Es256,
        1_000,
        HOUR,
        SIGNING_LEAD_SECS,
    );
    assert_eq!(first.keys.len(), 1);
    let second = rotate(
        Some(&first),
        SigningAlgorithm::Es256,
        2_000,
        HOUR,
        SIGNING_LEAD_SECS,
    );
    assert_eq!(second.keys.len(), 2);
    assert_eq!(second.current, second.keys[0].kid);
    assert_eq!(second.keys[0].retires_at, None);
    assert_eq!(second.keys[1].kid, first.current);
    assert_eq!(second.keys[1].retires_at, Some(2_000 + HOUR));
    // Before the old key's retirement it stays; after, it leaves.
    let third = rotate(
        Some(&second),
        SigningAlgorithm::EdDsa,
        2_000 + HOUR - 1,
        HOUR,
        SIGNING_LEAD_SECS,
    );
    assert_eq!(third.keys.len(), 3);
    let fourth = rotate(
        Some(&third),
        SigningAlgorithm::EdDsa,
        2_000 + HOUR,
        HOUR,
        SIGNING_LEAD_SECS,
    );
    assert!(fourth.keys.iter().all(|key| key.kid != first.current));
    assert!(KeyRing::from_document(&fourth).is_ok());
}

#[test]
fn rotations_faster_than_the_retention_keep_at_most_the_cap_dropping_the_soonest_retiring() {
    let mut set = rotate(
        None,
        SigningAlgorithm::Es256,
        1_000,
        1_800,
        SIGNING_LEAD_SECS,
    );
    let mut kids = vec![set.current.clone()];
    for step in 1..=6u64 {
        set = rotate(
            Some(&set),
            SigningAlgorithm::Es256,
            // Each replaced key had signed: rotations after its lead, well inside the
            // retention.
            1_000 + step * (PUBLICATION_DELAY_SECS + SIGNING_LEAD_SECS),
            1_800,
            SIGNING_LEAD_SECS,
        );
        kids.push(set.current.clone());
        assert!(set.keys.len() <= MAX_KEYS_IN_SET, "{} keys", set.keys.len());
    }
    // The newest keys stay: the current one and the ones replaced last.
    let held: Vec<_> = set.keys.iter().map(|key| key.kid.clone()).collect();
    assert_eq!(held.len(), MAX_KEYS_IN_SET);
    for kid in &kids[kids.len() - MAX_KEYS_IN_SET..] {
        assert!(held.contains(kid), "{kid} was dropped");
    }
    assert_eq!(set.keys[0].kid, set.current);
}

#[test]
fn a_pending_set_extends_only_the_set_it_was_made_from() {
    let first = rotate(
        None,
        SigningAlgorithm::Es256,
        1_000,
        HOUR,
        SIGNING_LEAD_SECS,
    );
    assert!(extends(&first, None), "a first set");
    let second = rotate(
        Some(&first),
        SigningAlgorithm::Es256,
        2_000,
        HOUR,
        SIGNING_LEAD_SECS,
    );
    assert!(extends(&second, Some(&first)));
    assert!(
        !extends(&second, None),
        "a first set holds its new key only"
    );
    // The current set lost a key since (an emergency revocation): not resumed.
    let revoked = revoke(&second, &first.current, SigningAlgorithm::Es256, 2_100).unwrap();
    let stale = rotate(
        Some(&second),
        SigningAlgorithm::Es256,
        2_050,
        HOUR,
        SIGNING_LEAD_SECS,
    );
    assert!(extends(&stale, Some(&second)));
    assert!(!extends(&stale, Some(&revoked)));
    // The current key was replaced since, keeping every older one: not resumed either
    // (promoting it would drop the key signers use now).
    let mut replaced = second.clone();
    let fresh = KeySetDocument::generate(SigningAlgorithm::Es256, 2_100);
    replaced.current = fresh.current.clone();
    replaced.keys.insert(0, fresh.keys[0].clone());
    assert!(!extends(&stale, Some(&replaced)));
}

#[test]
fn rotations_faster_than_the_lead_never_drop_the_key_that_signs() {
    let lead = super::super::DEFAULT_PUBLISH_LEAD_SECS;
    let first = rotate(None, SigningAlgorithm::Es256, 1_000, 10 * HOUR, lead);
    // Long after: the first key signs. Then four rotations a minute apart, all inside
    // one lead: none of their keys may sign yet, so the first must stay and sign.
    let now = 100_000;
    let mut set = first.clone();
    for step in 0..4 {
        set = rotate(
            Some(&set),
            SigningAlgorithm::Es256,
            now + step * 60,
            10 * HOUR,
            lead,
        );
        assert!(set.keys.len() <= MAX_KEYS_IN_SET);
        assert!(
            set.keys.iter().any(|key| key.kid == first.current),
            "rotation {step} dropped the key that signs"
        );
    }
    let ring = KeyRing::from_document(&set).unwrap();
    let at = now + 240;
    assert_eq!(ring.signing_kid(at, at + 930), Some(first.current.as_str()));
}

#[test]
fn revoking_the_current_key_replaces_it_with_one_used_at_once() {
    let first = rotate(
        None,
        SigningAlgorithm::Es256,
        1_000,
        HOUR,
        SIGNING_LEAD_SECS,
    );
    let second = rotate(
        Some(&first),
        SigningAlgorithm::Es256,
        2_000,
        HOUR,
        SIGNING_LEAD_SECS,
    );
    let revoked = revoke(&second, &second.current, SigningAlgorithm::Es256, 3_000).unwrap();
    assert!(revoked.keys.iter().all(|key| key.kid != second.current));
    let ring = KeyRing::from_document(&revoked).unwrap();
    assert_eq!(
        ring.signing_kid(3_000, 3_930),
        Some(revoked.current.as_str())
    );
    let old_only = revoke(&second, &first.current, SigningAlgorithm::Es256, 3_000).unwrap();
    assert_eq!(old_only.current, second.current);
    assert_eq!(old_only.keys.len(), 1);
    assert!(revoke(&second, "nope", SigningAlgorithm::Es256, 3_000).is_err());
}

#[test]
fn a_full_set_keeps_the_earliest_successor_of_the_key_that_signs() {
    let lead = super::super::DEFAULT_PUBLISH_LEAD_SECS;
    let retention = 10 * HOUR;
    let k1 = rotate(None, SigningAlgorithm::Es256, 1_000, retention, lead);
    // K2, then K3 a while later, then K4 and K5: all inside K2's lead. The set is full at
    // K5; K2 (the next to sign) must stay, a later successor leaves instead.
    let t2 = 100_000;
    let with_k2 = rotate(Some(&k1), SigningAlgorithm::Es256, t2, retention, lead);
    let k2 = with_k2.current.clone();
    let mut set = with_k2;
    for at in [t2 + 900, t2 + 960, t2 + 1_020] {
        set = rotate(Some(&set), SigningAlgorithm::Es256, at, retention, lead);
        assert!(
            set.keys.iter().any(|key| key.kid == k2),
            "K2 dropped at {at}"
        );
    }
    assert!(set.keys.len() <= MAX_KEYS_IN_SET);
    // Once K2's lead has passed, a signer uses it.
    let k2_signs = set
        .keys
        .iter()
        .find(|key| key.kid == k2)
        .unwrap()
        .signs_from();
    let ring = KeyRing::from_document(&set).unwrap();
    assert_eq!(
        ring.signing_kid(k2_signs, k2_signs + 930),
        Some(k2.as_str())
    );
}
