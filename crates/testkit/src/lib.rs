//! testkit
pub mod fake_llm;
