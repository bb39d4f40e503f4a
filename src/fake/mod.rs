//! A fake DingTalk for tests, benchmarks and the sandbox (filled in by the fake work).
