//! Replaying a failure: tests take their seeds through these helpers, so setting
//! `BITSWARM_SIM_SEED` reruns exactly the failing run, and [`SeedGuard`] prints that seed
//! when a test panics.

/// The environment variable that replays a seed.
pub const SEED_ENV: &str = "BITSWARM_SIM_SEED";

/// The seed to run: `BITSWARM_SIM_SEED` if set (and a number), else `default`.
#[must_use]
pub fn seed_or(default: u64) -> u64 {
    replay_seed().unwrap_or(default)
}

/// The seeds to run: only `BITSWARM_SIM_SEED` if set, else `defaults`.
#[must_use]
pub fn seeds(defaults: &[u64]) -> Vec<u64> {
    replay_seed().map_or_else(|| defaults.to_vec(), |seed| vec![seed])
}

fn replay_seed() -> Option<u64> {
    std::env::var(SEED_ENV).ok()?.trim().parse().ok()
}

/// Prints the seed and how to replay it if the thread panics while the guard is alive.
///
/// ```
/// let seed = bitswarm_sim::seed_or(7);
/// let _guard = bitswarm_sim::SeedGuard::new("my_test", seed);
/// // ... run and assert; a failed assertion prints
/// // "simulation my_test failed with seed 7; replay with BITSWARM_SIM_SEED=7"
/// ```
#[derive(Debug)]
pub struct SeedGuard {
    name: &'static str,
    seed: u64,
}

impl SeedGuard {
    /// A guard for the run `name` with `seed`.
    #[must_use]
    pub fn new(name: &'static str, seed: u64) -> Self {
        Self { name, seed }
    }
}

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The guard exists to tell a person at a terminal which seed failed.
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "simulation {} failed with seed {}; replay with {SEED_ENV}={}",
                    self.name, self.seed, self.seed
                );
            }
        }
    }
}
