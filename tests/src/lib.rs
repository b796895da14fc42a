//! rgpu-tests holds the end-to-end tests: real CUDA programs (C driver-API programs under
//! `programs/`, compiled with the pinned CUDA headers during the test run) executed through the
//! shim against servers the tests start, and tests of the server's refusals and resource
//! release. It ships no code of its own; it must not depend on anything a user would not have.
