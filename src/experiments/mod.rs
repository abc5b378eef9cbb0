//! The two experiments the examples run, as library functions so that tests can run short
//! versions of them: the paper's MNIST 2-D experiment and the face-embedding main job.

pub mod faces;
pub mod mnist;
pub mod training;
