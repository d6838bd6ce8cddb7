-- The verifier's SQLite schema at version 9.
CREATE TABLE devices (
	device_id VARCHAR(128) NOT NULL, 
	key_id VARCHAR(64) NOT NULL, 
	spki BLOB NOT NULL, 
	model VARCHAR(128) NOT NULL, 
	cert_serial VARCHAR(64) NOT NULL, 
	not_valid_after_ns BIGINT NOT NULL, 
	licensed_region VARCHAR(128) NOT NULL, 
	licence_expires_ns BIGINT NOT NULL, 
	enrolled_at_ns BIGINT NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	PRIMARY KEY (device_id), 
	UNIQUE (key_id)
);
CREATE TABLE proofs_archive (
	id INTEGER NOT NULL, 
	device_id VARCHAR(128) NOT NULL, 
	counter BIGINT NOT NULL, 
	digest BLOB NOT NULL, 
	previous_digest BLOB NOT NULL, 
	envelope BLOB NOT NULL, 
	accepted BOOLEAN NOT NULL, 
	verdict VARCHAR(16) NOT NULL, 
	reason VARCHAR(64) NOT NULL, 
	detail TEXT NOT NULL, 
	bounds TEXT NOT NULL, 
	evidence_time_ns BIGINT NOT NULL, 
	received_at_ns BIGINT NOT NULL, 
	token TEXT DEFAULT '' NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE licences (
	device_id VARCHAR(128) NOT NULL, 
	licence_id VARCHAR(128) NOT NULL, 
	version BIGINT NOT NULL, 
	region VARCHAR(128) NOT NULL, 
	valid_until_ns BIGINT NOT NULL, 
	withdrawn BOOLEAN NOT NULL, 
	changed_at_ns BIGINT NOT NULL, 
	PRIMARY KEY (device_id)
);
CREATE TABLE peer_measurements (
	digest BLOB NOT NULL, 
	timer VARCHAR(128) NOT NULL, 
	peer VARCHAR(128) NOT NULL, 
	rtt_min_ns BIGINT NOT NULL, 
	challenges TEXT NOT NULL, 
	landmark_time_ns BIGINT NOT NULL, 
	received_at_ns BIGINT NOT NULL, 
	PRIMARY KEY (digest)
);
CREATE INDEX ix_peer_measurements_received_at_ns ON peer_measurements (received_at_ns);
CREATE TABLE landmark_exclusions (
	id INTEGER NOT NULL, 
	landmark_id VARCHAR(128) NOT NULL, 
	excluded_at_ns BIGINT NOT NULL, 
	detail TEXT NOT NULL, 
	lifted_at_ns BIGINT, 
	lifted_by VARCHAR(128) NOT NULL, 
	lift_reason TEXT NOT NULL, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_landmark_exclusions_landmark_id ON landmark_exclusions (landmark_id);
CREATE TABLE revocations (
	kind VARCHAR(16) NOT NULL, 
	subject VARCHAR(128) NOT NULL, 
	revoked_at_ns BIGINT NOT NULL, 
	revoked_by TEXT NOT NULL, 
	why TEXT NOT NULL, 
	PRIMARY KEY (kind, subject)
);
CREATE TABLE landmarks (
	landmark_id VARCHAR(128) NOT NULL, 
	key_id VARCHAR(64) NOT NULL, 
	spki BLOB NOT NULL, 
	latitude FLOAT NOT NULL, 
	longitude FLOAT NOT NULL, 
	name TEXT NOT NULL, 
	operator VARCHAR(128) NOT NULL, 
	registered_at_ns BIGINT NOT NULL, 
	registered_by TEXT NOT NULL, 
	PRIMARY KEY (landmark_id), 
	UNIQUE (key_id)
);
CREATE TABLE trust_version (
	version BIGINT NOT NULL
);
CREATE TABLE trust_changes (
	id INTEGER NOT NULL, 
	version BIGINT NOT NULL, 
	change VARCHAR(32) NOT NULL, 
	subject VARCHAR(128) NOT NULL, 
	at_ns BIGINT NOT NULL, 
	changed_by TEXT NOT NULL, 
	why TEXT NOT NULL, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_trust_changes_version ON trust_changes (version);
CREATE TABLE licence_file (
	digest VARCHAR(64) NOT NULL, 
	applied_at_ns BIGINT NOT NULL
);
CREATE TABLE revocation_list (
	version BIGINT NOT NULL, 
	devices TEXT NOT NULL, 
	landmarks TEXT NOT NULL, 
	landmark_keys TEXT NOT NULL, 
	followed_at_ns BIGINT NOT NULL
);
CREATE TABLE schema_version (
	version INTEGER NOT NULL
);
CREATE TABLE proofs (
	id INTEGER NOT NULL, 
	device_id VARCHAR(128) NOT NULL, 
	counter BIGINT NOT NULL, 
	digest BLOB NOT NULL, 
	previous_digest BLOB NOT NULL, 
	envelope BLOB NOT NULL, 
	accepted BOOLEAN NOT NULL, 
	verdict VARCHAR(16) NOT NULL, 
	reason VARCHAR(64) NOT NULL, 
	detail TEXT NOT NULL, 
	bounds TEXT NOT NULL, 
	evidence_time_ns BIGINT NOT NULL, 
	received_at_ns BIGINT NOT NULL, 
	token TEXT DEFAULT '' NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(device_id) REFERENCES devices (device_id)
);
CREATE INDEX proofs_by_digest ON proofs (device_id, digest);
CREATE TABLE chain_heads (
	device_id VARCHAR(128) NOT NULL, 
	counter BIGINT NOT NULL, 
	digest BLOB NOT NULL, 
	previous_digest BLOB NOT NULL, 
	accepted_at_ns BIGINT NOT NULL, 
	landmark_times TEXT NOT NULL, 
	verdict VARCHAR(16) NOT NULL, 
	evidence_time_ns BIGINT NOT NULL, 
	licence_version BIGINT DEFAULT 0 NOT NULL, 
	trust_version BIGINT DEFAULT 0 NOT NULL, 
	fix TEXT DEFAULT '[]' NOT NULL, 
	fix_time_ns BIGINT DEFAULT 0 NOT NULL, 
	PRIMARY KEY (device_id), 
	FOREIGN KEY(device_id) REFERENCES devices (device_id)
);
CREATE TABLE successors (
	device_id VARCHAR(128) NOT NULL, 
	previous_digest BLOB NOT NULL, 
	digest BLOB NOT NULL, 
	PRIMARY KEY (device_id, previous_digest), 
	FOREIGN KEY(device_id) REFERENCES devices (device_id)
);
CREATE TABLE alerts (
	id INTEGER NOT NULL, 
	alert_id VARCHAR(32) NOT NULL, 
	device_id VARCHAR(128) NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	reason VARCHAR(64) NOT NULL, 
	detail TEXT NOT NULL, 
	time_ns BIGINT NOT NULL, 
	proof_id INTEGER, 
	PRIMARY KEY (id), 
	UNIQUE (alert_id), 
	FOREIGN KEY(proof_id) REFERENCES proofs (id)
);
CREATE INDEX ix_alerts_device_id ON alerts (device_id);
INSERT INTO trust_version VALUES (0);
INSERT INTO schema_version VALUES (9);
