//! Secrets never leave the process; the APIs refuse what they must.
