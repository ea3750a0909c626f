//! The first keys of the engine's two-key advisory locks, in one place: each is "pgs" and one
//! letter as a 32-bit number (pure, no SPI). sql/capture.sql spells the cleanup key as a number
//! (a test holds the two together); `delta::ir::KEY_HASH_SEED` is a hash seed, not a lock.

/// Serializes refresh, alter and drop of one stream table (second key: its oid).
pub const STREAM_TABLE: i32 = 0x7067_7364; // "pgsd"

/// Held for the session by the scheduler worker of a database (second key: the database oid),
/// so that a restarted launcher never runs two workers for one database.
pub const SCHEDULER_WORKER: i32 = 0x7067_7377; // "pgsw"

/// Taken, in source oid order, before the capture objects of a source change (second key: the
/// source's oid); shared by refreshes that only read them.
pub const CAPTURE_SETUP: i32 = 0x7067_7375; // "pgsu"

/// Keeps change-record cleanup (`_forget_covered` in sql/capture.sql, which tries it
/// exclusively) away from stream tables being created or redefined (which hold it shared);
/// second key 0.
pub const CHANGE_CLEANUP: i32 = 0x7067_7363; // "pgsc"

/// materialize() of one model name (second key: a hash of the name).
pub const MATERIALIZE: i32 = 0x7067_736d; // "pgsm"

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_and_spell_their_letters() {
        let keys = [
            (STREAM_TABLE, b"pgsd"),
            (SCHEDULER_WORKER, b"pgsw"),
            (CAPTURE_SETUP, b"pgsu"),
            (CHANGE_CLEANUP, b"pgsc"),
            (MATERIALIZE, b"pgsm"),
        ];
        for (i, (key, letters)) in keys.iter().enumerate() {
            assert_eq!(&key.to_be_bytes(), *letters);
            assert!(keys[i + 1..].iter().all(|(other, _)| other != key));
        }
    }

    #[test]
    fn the_sql_cleanup_uses_the_same_key() {
        let capture = include_str!("../../../sql/capture.sql");
        let literal = format!("pg_try_advisory_xact_lock({CHANGE_CLEANUP}, 0)");
        assert!(
            capture.contains(&literal),
            "sql/capture.sql must take {literal}"
        );
    }
}
