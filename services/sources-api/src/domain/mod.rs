//! What a request means once parsed: validated values with sources-api-go's messages.

/// Sources: creation and edits.
pub mod source;
