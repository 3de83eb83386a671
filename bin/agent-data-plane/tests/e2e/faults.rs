//! Intake faults under steady load, and SIGTERM under load.
