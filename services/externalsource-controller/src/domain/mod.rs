//! What the controller decides, without I/O: whitelists, hook policies, artifacts, garbage
//! collection, backoff, conditions.
