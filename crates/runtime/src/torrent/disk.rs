//! A torrent's door to the disk pool: jobs go straight to the pool's bounded queue, and when it
//! is full they wait here, in order, while the torrent stops reading from its peers (so TCP
//! pushes back on them) until the pool has taken them all.

use std::collections::VecDeque;
use std::sync::Arc;

use bitswarm_storage::{DiskPool, Job, Rejected, StorageError};

/// Jobs for one torrent, with the overflow the pool could not take yet.
#[derive(Debug)]
pub(super) struct DiskQueue {
    pool: Arc<DiskPool>,
    backlog: VecDeque<Job>,
}

impl DiskQueue {
    pub(super) fn new(pool: Arc<DiskPool>) -> Self {
        Self {
            pool,
            backlog: VecDeque::new(),
        }
    }

    /// Submits `job`, or keeps it (after any earlier ones) if the pool is full. A closed pool
    /// (session shutting down) drops it.
    pub(super) fn submit(&mut self, job: Job) {
        if !self.backlog.is_empty() {
            self.backlog.push_back(job);
            return;
        }
        if let Err(Rejected {
            job,
            error: StorageError::Busy,
        }) = self.pool.try_submit(job)
        {
            self.backlog.push_back(job);
        }
    }

    /// Hands the pool what it will take of the backlog.
    pub(super) fn retry(&mut self) {
        while let Some(job) = self.backlog.pop_front() {
            if let Err(Rejected {
                job,
                error: StorageError::Busy,
            }) = self.pool.try_submit(job)
            {
                self.backlog.push_front(job);
                return;
            }
        }
    }

    /// Whether nothing waits here (the torrent may take more input from peers).
    pub(super) fn is_idle(&self) -> bool {
        self.backlog.is_empty()
    }

    /// The pool, for jobs that bypass the backlog's order (none yet) and for cancelling.
    pub(super) fn pool(&self) -> &Arc<DiskPool> {
        &self.pool
    }
}
