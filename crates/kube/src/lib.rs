//! The Kubernetes side of minato: pull secrets byte-identical to `kubectl create secret
//! docker-registry`, and the docker `config.json` that `minato login` maintains.
//!
//! kubectl is written in Go, so matching it byte for byte means reproducing Go's JSON string
//! escaping ([`gojson`]) and the YAML scalar styles of the Go YAML emitter ([`yaml`]).

pub mod admission;
pub mod cluster;
pub mod credential_provider;
pub mod docker_config;
pub mod doctor;
pub mod gojson;
pub mod keyring;
pub mod login;
pub mod policy;
pub mod pull;
pub mod reference;
pub mod registry_client;
pub mod secret;
pub mod signatures;
pub mod trusted_keys;
pub mod webhook;
pub mod webhook_manifests;
pub mod yaml;
