//! The Kubernetes side of minato: pull secrets byte-identical to `kubectl create secret
//! docker-registry`, and the docker `config.json` that `minato login` maintains.
//!
//! kubectl is written in Go, so matching it byte for byte means reproducing Go's JSON string
//! escaping ([`gojson`]) and the YAML scalar styles of the Go YAML emitter ([`yaml`]).

pub mod credential_provider;
pub mod docker_config;
pub mod gojson;
pub mod login;
pub mod reference;
pub mod secret;
pub mod yaml;
