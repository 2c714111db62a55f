//! Private-access tests of the stack pool.
