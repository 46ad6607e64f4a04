-- compose.yaml: one database per service, owned by the compose stack's single role.
CREATE DATABASE cofre_core;
CREATE DATABASE cofre_auth;
CREATE DATABASE cofre_audit;
CREATE DATABASE cofre_legacy;
