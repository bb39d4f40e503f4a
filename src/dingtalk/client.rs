//! HTTP implementation of `DingTalkApi` (filled in by the client work).
