//! Tests of the fake against its own wire format.
