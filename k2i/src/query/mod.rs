//! Filtering, sorting and projecting the process table (the `/v1/proc` query parameters).
