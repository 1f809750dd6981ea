//! The behavioural suite every [`Store`](super::Store) implementation passes.
