//! Pipelines outside the node's own labs: a notebook run whole, the same way wherever it runs
//! ([`cells`]), and the centre's batch system that can run it ([`slurm`]), through a process
//! started inside each batch job ([`exec`]).

pub mod cells;
pub mod exec;
pub mod slurm;
