-- AWS-shaped objects (IAM roles, OIDC providers), keyed by kind and lower-cased ARN.
CREATE TABLE aws_objects (
    kind TEXT NOT NULL,
    key  TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
