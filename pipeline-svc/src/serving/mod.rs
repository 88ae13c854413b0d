//! Deployments on this machine. Each replica of a deployment's predictor (or transformer) is its image run by the
//! executor's sandbox as a long-lived process in a network namespace of its own, reached by the platform alone
//! through a relay ([`replica`]); a [`supervisor`] keeps a component's replicas running and says how they are.

pub mod deployments;
pub mod entities;
pub mod replica;
pub mod supervisor;
