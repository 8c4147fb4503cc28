"""Thirteenth blind-written part (``tune13``): written without reading the scanner, to be tuned on.

Weak, human-chosen and vendor-default credentials the way real repositories leak them: passwords
that are words, first names, keyboard walks, seasons plus years, product names and
``<service>_dev``/``<app>123`` values; hand-typed session and JWT signing secrets; Gmail app
passwords; credentials in SQL setup scripts, provisioning scripts, Vagrantfiles, ``docker run
-e``, compose files, Makefiles, README "default login" tables, wiki pages, API-client exports,
PHP arrays, Java properties, .NET connection strings, Go fixtures, Ruby seeds and Python
settings and tests. Look-alikes use the same shapes: placeholders, env and secret-store
references, template expressions, hashes, encrypted blobs, public vendor defaults that grant
nothing (the Android debug keystore, the JDK truststore, redis.conf's commented example),
password blocklists, role words, UI strings and validation messages. Several values per file
(``MULTI_SLOT``); every value of one template has the template's kind and label.
"""

from __future__ import annotations

import base64
import string
import uuid

import evalset
from evalset import ALNUM, Template

MULTI_SLOT = True

HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
CRYPT = "./" + ALNUM


class Tune13Values(evalset.Values):
    """Value generators of the tune13 part: its own words, names, products and service users,
    and ``t13_`` generators for the shapes of human-chosen credentials and their look-alikes."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "quillwort",
            "brisket",
            "zither",
            "marzipan",
            "cormorant",
            "peridot",
            "sorrel",
            "wombat",
            "gazpacho",
        ]
        self.users = [
            "intranet",
            "timesheet",
            "crmsync",
            "printsvc",
            "clinic",
            "bookings",
            "storefront",
            "moodle",
        ]
        self.names = [
            "jessica",
            "brandon",
            "tiffany",
            "dustin",
            "priya",
            "svetlana",
            "mateo",
            "kowalski",
            "giulia",
        ]
        self.products = [
            "tallyho",
            "pinecrest",
            "bluefin",
            "orbitdesk",
            "hopscotch",
            "saltbox",
            "larkspur",
        ]
        self.walks = [
            "qwerty",
            "qwertyuiop",
            "asdfgh",
            "asdf1234",
            "1qaz2wsx",
            "zxcvbnm",
            "qazwsx",
            "1q2w3e4r",
            "!QAZ2wsx",
            "poiuytrewq",
            "q1w2e3r4t5",
            "zaq12wsx",
        ]

    def _cap(self, word: str) -> str:
        return word.capitalize() if self.rng.random() < 0.5 else word

    def _b64(self, n: int) -> str:
        return base64.b64encode(self.rng.randbytes(n)).decode()

    # -- positives ------------------------------------------------------------------
    def t13_word_pass(self) -> str:
        """A dictionary word with the usual lazy suffix."""
        suffix = self.pick(["", "1", "123", "!", "2024", "_dev", "99", "01", "#"])
        return self._cap(self.pick(self.words)) + suffix

    def t13_name_pass(self) -> str:
        """Somebody's first name plus a birth year or two digits."""
        tail = self.pick(
            [
                str(self.rng.randrange(1968, 2008)),
                self.s(2, string.digits),
                "!",
                "123",
                "@" + str(self.rng.randrange(1, 99)),
            ]
        )
        return self._cap(self.pick(self.names)) + tail

    def t13_walk_pass(self) -> str:
        """A keyboard walk, sometimes with a digit or symbol stuck on."""
        return self.pick(self.walks) + self.pick(["", "!", "1", "123", self.s(2, string.digits)])

    def t13_season_pass(self) -> str:
        season = self.pick(["Summer", "Winter", "Spring", "Autumn", "Fall", "summer", "winter"])
        return season + str(self.rng.randrange(2015, 2027)) + self.pick(["", "!", "#", "!!", "$"])

    def t13_app_pass(self) -> str:
        """``<app>123``, ``<service>_dev`` and friends."""
        base = self.pick(self.products + self.users)
        suffix = self.pick(["123", "_dev", "2024", "!", "@123", "_local", "_test", "_pw", "#1"])
        return self._cap(base) + suffix

    def t13_any_weak(self) -> str:
        gen = self.pick(
            [
                self.t13_word_pass,
                self.t13_name_pass,
                self.t13_walk_pass,
                self.t13_season_pass,
                self.t13_app_pass,
            ]
        )
        return gen()

    def t13_url_pass(self) -> str:
        """A weak password that needs no escaping in a URI's userinfo."""
        base = self.pick(self.words + self.names + self.products + self.users)
        return self._cap(base) + self.pick(["", "1", "123", "2024", "_dev", "-local", "99"])

    def t13_typed_secret(self) -> str:
        """A session or JWT signing secret somebody typed by hand."""
        w1, w2, w3 = (self.pick(self.words) for _ in range(3))
        app = self.pick(self.products)
        n = str(self.rng.randrange(1, 2030))
        shape = self.rng.randrange(7)
        if shape == 0:
            return f"{w1}-{w2}-secret-key"
        if shape == 1:
            return f"my-super-secret-{w1}-key-{n}"
        if shape == 2:
            return f"{app}_jwt_secret_{n}"
        if shape == 3:
            return f"{w1} {w2} {w3}"
        if shape == 4:
            return f"thisIsMy{w1.capitalize()}SecretKey{n}"
        if shape == 5:
            return f"s3cr3t{w1.capitalize()}{n}"
        return f"{app}-session-{self.s(6)}"

    def t13_gmail_app(self) -> str:
        """A Google app password: four groups of four lowercase letters."""
        groups = [self.s(4, string.ascii_lowercase) for _ in range(4)]
        return self.pick([" ", ""]).join(groups)

    def t13_strong_pass(self) -> str:
        return self.s(self.rng.randrange(14, 24), ALNUM + "!#%^*-_+")

    def t13_basic_weak(self) -> str:
        user = self.pick([*self.users, "admin", "guest", "tomcat"])
        return base64.b64encode(f"{user}:{self.t13_url_pass()}".encode()).decode()

    def t13_laravel_key(self) -> str:
        return "base64:" + self._b64(32)

    def t13_rails_secret(self) -> str:
        return self.s(128, HEX)

    def t13_hex32(self) -> str:
        return self.s(32, HEX)

    def t13_django_key(self) -> str:
        return "django-insecure-" + self.s(
            50, string.ascii_lowercase + string.digits + "!@#^&*-_=+"
        )

    def t13_phoenix_key(self) -> str:
        return self.s(64, B64)

    # -- look-alikes ------------------------------------------------------------------
    def t13_placeholder(self) -> str:
        return self.pick(
            [
                "changeme",
                "<password>",
                "your_password_here",
                "CHANGE_ME",
                "xxxxxxxx",
                "<db-password>",
                "REPLACE_ME",
                "your-app-password",
                "<insert password>",
                "__PASSWORD__",
            ]
        )

    def t13_shell_ref(self) -> str:
        return self.pick(
            [
                "${DB_PASSWORD}",
                "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}",
                "$DB_PASS",
                "$(cat /run/secrets/db_password)",
                "${MYSQL_ROOT_PASSWORD:-}",
                "$ADMIN_PASSWORD",
            ]
        )

    def t13_py_ref(self) -> str:
        return self.pick(
            [
                'os.environ["DB_PASSWORD"]',
                'os.getenv("SECRET_KEY")',
                'env("DJANGO_SECRET_KEY")',
                'config("SECRET_KEY")',
                'os.environ.get("FLASK_SECRET_KEY")',
            ]
        )

    def t13_py_gen(self) -> str:
        return self.pick(
            [
                "secrets.token_urlsafe(32)",
                "os.urandom(24)",
                "fake.password(length=12)",
                "get_random_secret_key()",
                "secrets.token_hex(16)",
            ]
        )

    def t13_js_ref(self) -> str:
        return self.pick(
            [
                "process.env.SESSION_SECRET",
                "config.get('session.secret')",
                "process.env.JWT_SECRET as string",
                "env.ADMIN_PASSWORD",
                "process.env.SMTP_PASS ?? ''",
            ]
        )

    def t13_java_ref(self) -> str:
        return self.pick(
            [
                'System.getenv("DB_PASSWORD")',
                'props.getProperty("db.password")',
                'env.getProperty("jwt.secret")',
                "request.getPassword()",
                'config.getString("smtp.password")',
            ]
        )

    def t13_go_ref(self) -> str:
        return self.pick(
            [
                'os.Getenv("DB_PASSWORD")',
                "cfg.Database.Password",
                'viper.GetString("db.password")',
                'mustEnv("ADMIN_PASSWORD")',
            ]
        )

    def t13_cs_ref(self) -> str:
        return self.pick(
            [
                'Configuration["Jwt:Key"]',
                'Environment.GetEnvironmentVariable("SA_PASSWORD")',
                'builder.Configuration.GetValue<string>("Smtp:Password")',
                "_options.Value.Password",
            ]
        )

    def t13_php_ref(self) -> str:
        return self.pick(
            [
                "env('DB_PASSWORD')",
                "getenv('DB_PASS')",
                "$_ENV['DB_PASSWORD']",
                "env('MAIL_PASSWORD', '')",
            ]
        )

    def t13_ruby_ref(self) -> str:
        return self.pick(
            [
                'ENV.fetch("ADMIN_PASSWORD")',
                'ENV["SEED_PASSWORD"]',
                "Rails.application.credentials.dig(:admin, :password)",
                "SecureRandom.hex(16)",
            ]
        )

    def t13_spring_ref(self) -> str:
        return self.pick(
            [
                "${DB_PASSWORD}",
                "${JWT_SECRET:}",
                "${vcap.services.mysql.credentials.password}",
                "${SPRING_MAIL_PASSWORD}",
            ]
        )

    def t13_ci_ref(self) -> str:
        return self.pick(
            [
                "${{ secrets.DB_PASSWORD }}",
                "${{ secrets.SMTP_APP_PASSWORD }}",
                "$(DB_PASSWORD)",
                "$CI_DB_PASSWORD",
            ]
        )

    def t13_jinja_ref(self) -> str:
        return self.pick(
            [
                "{{ vault_mysql_root_password }}",
                "{{ lookup('env', 'DB_PASSWORD') }}",
                "{{ db_password }}",
                "{{ lookup('community.hashi_vault.hashi_vault', 'secret=kv/data/db:password') }}",
            ]
        )

    def t13_helm_ref(self) -> str:
        return self.pick(
            [
                "{{ .Values.auth.password | b64enc | quote }}",
                '{{ required "auth.password is required" .Values.auth.password | b64enc }}',
                "{{ randAlphaNum 16 | b64enc | quote }}",
            ]
        )

    def t13_tf_ref(self) -> str:
        return self.pick(
            [
                "var.db_password",
                "random_password.db.result",
                "data.aws_secretsmanager_secret_version.db.secret_string",
                "sensitive(var.admin_password)",
            ]
        )

    def t13_postman_var(self) -> str:
        return self.pick(["{{password}}", "{{adminPassword}}", "{{basicAuthPass}}"])

    def t13_insomnia_ref(self) -> str:
        return self.pick(["{{ _.password }}", "{{ _.admin_password }}", "{{ _.smtp_pass }}"])

    def t13_make_ref(self) -> str:
        return self.pick(
            [
                "$(DB_PASSWORD)",
                "$(shell pass show dev/mysql)",
                "$(shell op read op://Dev/mysql/password)",
                "$${DB_PASSWORD}",
            ]
        )

    def t13_masked(self) -> str:
        return self.pick(["********", "••••••••", "[REDACTED]", "<hidden>", "***"])

    def t13_role_word(self) -> str:
        return self.pick(["password", "PASSWORD", "pass", "passwd", "Password"])

    def t13_role_pair(self) -> str:
        return self.pick(
            ["username:password", "USER:PASS", "<user>:<password>", "$USER:$PASSWORD", "user:pass"]
        )

    def t13_ui_text(self) -> str:
        return self.pick(
            [
                "Enter your password",
                "Confirm password",
                "Forgot your password?",
                "Passwort vergessen?",
                "Mot de passe",
                "Contraseña",
                "Show password",
                "Current password",
                "New password",
            ]
        )

    def t13_validation_msg(self) -> str:
        return self.pick(
            [
                "Password must be at least 8 characters.",
                "The provided password is incorrect.",
                "Passwords do not match",
                "Password is required",
                "Your password has expired. Please choose a new one.",
                "must contain an uppercase letter, a number and a symbol",
            ]
        )

    def t13_error_code(self) -> str:
        return self.pick(
            [
                "AUTH_INVALID_PASSWORD",
                "E_PASSWORD_TOO_WEAK",
                "ERR_PWD_EXPIRED",
                "PASSWORD_REUSE_DETECTED",
                "LOGIN_LOCKED_OUT",
                "AUTH-" + self.s(4, string.digits),
            ]
        )

    def t13_field_name(self) -> str:
        return self.pick(
            [
                "password",
                "password_confirmation",
                "current-password",
                "new_password",
                "passwd",
                "user[password]",
            ]
        )

    def t13_bcrypt(self) -> str:
        return self.pick(["$2y$10$", "$2a$12$", "$2b$10$"]) + self.s(53, CRYPT)

    def t13_pbkdf2(self) -> str:
        return f"pbkdf2_sha256$600000${self.s(22)}${self._b64(32)}"

    def t13_apr1(self) -> str:
        return f"$apr1${self.s(8, CRYPT)}${self.s(22, CRYPT)}"

    def t13_sha512crypt(self) -> str:
        return f"$6${self.s(16, CRYPT)}${self.s(86, CRYPT)}"

    def t13_mysql_hash(self) -> str:
        return "*" + self.s(40, "0123456789ABCDEF")

    def t13_scram(self) -> str:
        return f"SCRAM-SHA-256$4096:{self._b64(16)}${self._b64(32)}:{self._b64(32)}"

    def t13_aspnet_hash(self) -> str:
        head = (
            b"\x01" + (1).to_bytes(4, "big") + (10000).to_bytes(4, "big") + (16).to_bytes(4, "big")
        )
        return base64.b64encode(head + self.rng.randbytes(48)).decode()

    def t13_android_default(self) -> str:
        """The SDK's debug keystore password, the same on every machine."""
        return "android"

    def t13_cacerts(self) -> str:
        """The JDK truststore's published default; it guards public certificates only."""
        return "changeit"

    def t13_redis_example(self) -> str:
        return "foobared"

    def t13_vault_blob(self) -> str:
        rows = [self.s(80, HEX) for _ in range(self.rng.randrange(4, 7))]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def t13_secret_path(self) -> str:
        return self.pick(
            [
                "secret/data/staging/postgres",
                "prod/db/master-password",
                "kv/teams/ops/smtp",
            ]
        )

    def t13_jenkins_init(self) -> str:
        return self.pick(
            [
                "/var/jenkins_home/secrets/initialAdminPassword",
                "/var/lib/jenkins/secrets/initialAdminPassword",
            ]
        )

    def t13_secret_key_name(self) -> str:
        return self.pick(["password", "db-password", "POSTGRES_PASSWORD", "root-password"])

    def t13_secret_file(self) -> str:
        return self.pick(
            [
                "/run/secrets/postgres_password",
                "/run/secrets/db_root_password",
                "/etc/app/secrets/smtp_pass",
            ]
        )

    def t13_example_uri(self) -> str:
        user = self.pick(self.users)
        host = self.pick(["db.example.com", "localhost.test", "broker.invalid", "example.org"])
        scheme = self.pick(["postgres", "mysql", "amqp", "redis"])
        return f"{scheme}://{user}:{self.t13_url_pass()}@{host}/{user}"

    def t13_doc_conn(self) -> str:
        return self.pick(
            [
                "myPassword",
                "<YourStrong@Passw0rd>",
                "{your_password}",
                "YOUR_PASSWORD",
                "<password>",
            ]
        )

    def t13_empty(self) -> str:
        return ""

    def t13_hex64(self) -> str:
        return self.s(64, HEX)

    def t13_sri(self) -> str:
        return "sha512-" + self._b64(64)

    def t13_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def t13_ssh_pub(self) -> str:
        blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + self.rng.randbytes(32)
        who = self.pick(self.names)
        return f"ssh-ed25519 {base64.b64encode(blob).decode()} {who}@laptop"

    def t13_cert(self) -> str:
        body = "MII" + self.s(2) + self._b64(700)
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        return "-----BEGIN CERTIFICATE-----\n" + "\n".join(rows) + "\n-----END CERTIFICATE-----"

    def t13_enc_key(self) -> str:
        body = "MIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQI" + self._b64(900)
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        return (
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
            + "\n".join(rows)
            + "\n-----END ENCRYPTED PRIVATE KEY-----"
        )

    def t13_jasypt(self) -> str:
        return "ENC(" + self._b64(self.rng.choice([32, 48])) + ")"

    def t13_sealed(self) -> str:
        return "AgB" + self.s(340, B64) + "=="

    def t13_sops(self) -> str:
        data = self._b64(self.rng.randrange(8, 20))
        return f"ENC[AES256_GCM,data:{data},iv:{self._b64(32)},tag:{self._b64(16)},type:str]"

    def t13_rails_enc(self) -> str:
        return f"{self._b64(self.rng.randrange(90, 200))}--{self._b64(12)}--{self._b64(16)}"

    def t13_policy_regex(self) -> str:
        return self.pick(
            [
                "^(?=.*[a-z])(?=.*[A-Z])(?=.*\\\\d).{8,}$",
                "^(?=.*[0-9])(?=.*[!@#$%^&*]).{12,64}$",
                "^[A-Za-z0-9!@#$%]{10,}$",
            ]
        )

    def t13_vault_item(self) -> str:
        return self.pick(
            [
                "Engineering > Staging Postgres (admin)",
                "Shared-Ops / RabbitMQ management",
                "IT vault: Wi-Fi office-guest",
            ]
        )

    def t13_format_ph(self) -> str:
        return self.pick(["{0}", "%s", "{password}", "%(password)s"])

    def t13_maven_filter(self) -> str:
        return self.pick(["@db.password@", "${db.password}", "@jdbc.password@"])

    def t13_psql_var(self) -> str:
        return self.pick([":'admin_password'", ":'app_pass'", ":'seed_password'"])


VALUES = Tune13Values

TEMPLATES: list[Template] = [
    # -- positives: SQL, shell, provisioning ---------------------------------------------
    (
        "db/init/01-users.sql",
        """-- Local development users. Run as root after `make db-up`.
CREATE DATABASE IF NOT EXISTS timesheet CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS 'timesheet'@'%' IDENTIFIED BY '{V}';
GRANT ALL PRIVILEGES ON timesheet.* TO 'timesheet'@'%';
CREATE USER IF NOT EXISTS 'reporting_ro'@'%' IDENTIFIED BY '{V2}';
GRANT SELECT ON timesheet.* TO 'reporting_ro'@'%';
FLUSH PRIVILEGES;
""",
        "t13_app_pass",
        True,
    ),
    (
        "scripts/provision.sh",
        """#!/usr/bin/env bash
set -euo pipefail
apt-get install -y mariadb-server
systemctl enable --now mariadb
mysql -uroot -p'{V}' -e "CREATE DATABASE IF NOT EXISTS wiki"
mysql -uroot -p'{V2}' wiki < /vagrant/db/schema.sql
echo "provisioned"
""",
        "t13_word_pass",
        True,
    ),
    (
        "Vagrantfile",
        """Vagrant.configure("2") do |config|
  config.vm.box = "ubuntu/jammy64"
  config.vm.network "forwarded_port", guest: 5432, host: 15432
  config.vm.provision "shell", inline: <<-SHELL
    apt-get update && apt-get install -y postgresql
    sudo -u postgres psql -c "ALTER USER postgres PASSWORD '{V}';"
    echo "vagrant:{V2}" | chpasswd
  SHELL
end
""",
        "t13_walk_pass",
        True,
    ),
    (
        "scripts/dev-db.sh",
        """#!/bin/sh
# spin up a throwaway postgres for the integration tests
docker run -d --name bookings-pg -p 5432:5432 \\
  -e POSTGRES_USER=bookings \\
  -e POSTGRES_PASSWORD={V} \\
  -e POSTGRES_DB=bookings \\
  postgres:15-alpine
""",
        "t13_app_pass",
        True,
    ),
    (
        "docker-compose.yml",
        """version: "3.8"
services:
  rabbitmq:
    image: rabbitmq:3.12-management
    ports: ["5672:5672", "15672:15672"]
    environment:
      RABBITMQ_DEFAULT_USER: guest
      RABBITMQ_DEFAULT_PASS: {V}
  worker:
    build: .
    depends_on: [rabbitmq]
""",
        "t13_word_pass",
        True,
    ),
    (
        "Makefile",
        """DB_USER ?= root
DB_PASS ?= {V}
DB_NAME ?= crm

.PHONY: db-reset
db-reset:
\tmysql -u$(DB_USER) -p$(DB_PASS) -e 'DROP DATABASE IF EXISTS $(DB_NAME); CREATE DATABASE $(DB_NAME)'
\tmysql -u$(DB_USER) -p$(DB_PASS) $(DB_NAME) < sql/schema.sql
""",
        "t13_season_pass",
        True,
    ),
    (
        "README.md",
        """# Clinic Portal

## Running locally

    docker compose up -d
    open http://localhost:8080

## Default login

| Role         | Username    | Password  |
|--------------|-------------|-----------|
| Admin        | admin       | {V}  |
| Receptionist | frontdesk   | {V2}  |
| Doctor       | dr.house    | {V3}  |
""",
        "t13_name_pass",
        True,
    ),
    (
        "docs/wiki/Test-Accounts.md",
        """# Test accounts (staging)

These accounts exist on https://staging.storefront.internal and are reset every Monday.

* **shopper** / `{V}` - normal customer with saved cards
* **merchant** / `{V2}` - merchant dashboard
* **support** / `{V3}` - can impersonate customers
""",
        "t13_any_weak",
        True,
    ),
    (
        "postman/Bookings.postman_collection.json",
        """{
  "info": {"name": "Bookings API", "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"},
  "auth": {
    "type": "basic",
    "basic": [
      {"key": "username", "value": "bookings-admin", "type": "string"},
      {"key": "password", "value": "{V}", "type": "string"}
    ]
  },
  "item": [{"name": "List bookings", "request": {"method": "GET", "url": "{{baseUrl}}/bookings"}}]
}
""",
        "t13_app_pass",
        True,
    ),
    (
        "insomnia/export.yaml",
        """_type: export
__export_format: 4
resources:
  - _id: env_base
    _type: environment
    name: Local
    data:
      base_url: http://localhost:3000
      admin_user: admin
      admin_password: {V}
""",
        "t13_name_pass",
        True,
    ),
    (
        "config/database.php",
        """<?php

return [
    'default' => 'mysql',
    'connections' => [
        'mysql' => [
            'driver' => 'mysql',
            'host' => '127.0.0.1',
            'database' => 'intranet',
            'username' => 'intranet',
            'password' => '{V}',
            'charset' => 'utf8mb4',
        ],
    ],
];
""",
        "t13_word_pass",
        True,
    ),
    (
        "src/main/resources/application.properties",
        """server.port=8081
spring.datasource.url=jdbc:postgresql://localhost:5432/printsvc
spring.datasource.username=printsvc
spring.datasource.password={V}
spring.jpa.hibernate.ddl-auto=update
logging.level.org.hibernate.SQL=debug
""",
        "t13_app_pass",
        True,
    ),
    (
        "src/Clinic.Api/appsettings.Development.json",
        """{
  "Logging": { "LogLevel": { "Default": "Information" } },
  "ConnectionStrings": {
    "Default": "Server=localhost,1433;Database=Clinic;User Id=sa;Password={V};TrustServerCertificate=True"
  },
  "AllowedHosts": "*"
}
""",
        "t13_season_pass",
        True,
    ),
    (
        "Web.config",
        """<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <connectionStrings>
    <add name="ShopDb" connectionString="Data Source=.\\SQLEXPRESS;Initial Catalog=Shop;User ID=shopweb;Password={V}" providerName="System.Data.SqlClient" />
  </connectionStrings>
  <system.web>
    <compilation debug="true" targetFramework="4.8" />
  </system.web>
</configuration>
""",
        "t13_walk_pass",
        True,
    ),
    (
        "internal/store/store_test.go",
        """package store

import (
\t"context"
\t"testing"
)

const testDSN = "postgres://crmsync:{V}@localhost:5432/crmsync_test?sslmode=disable"

func TestOpen(t *testing.T) {
\tdb, err := Open(context.Background(), testDSN)
\tif err != nil {
\t\tt.Skipf("no database: %v", err)
\t}
\tdefer db.Close()
}
""",
        "t13_url_pass",
        True,
    ),
    (
        "db/seeds.rb",
        """# This file should contain all the record creation needed to seed the database.
admin = User.find_or_create_by!(email: "admin@moodle.local") do |u|
  u.name = "Admin"
  u.password = "{V}"
  u.admin = true
end

User.find_or_create_by!(email: "teacher@moodle.local") do |u|
  u.name = "Teacher"
  u.password = "{V2}"
end
""",
        "t13_any_weak",
        True,
    ),
    (
        "mysite/settings.py",
        """from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# SECURITY WARNING: keep the secret key used in production secret!
SECRET_KEY = '{V}'

DEBUG = True
ALLOWED_HOSTS = ["*"]
""",
        "t13_typed_secret",
        True,
    ),
    (
        "tests/test_login.py",
        """import pytest


@pytest.mark.django_db
def test_login_page_for_seeded_users(client, django_user_model):
    django_user_model.objects.create_user(username="alice", password="{V}")
    django_user_model.objects.create_user(username="bob", password="{V2}")
    resp = client.get("/accounts/login/?next=/dashboard/")
    assert resp.status_code == 200
""",
        "t13_name_pass",
        True,
    ),
    (
        "app.py",
        """from flask import Flask, render_template, session

app = Flask(__name__)
app.secret_key = "{V}"


@app.route("/")
def index():
    session.setdefault("visits", 0)
    session["visits"] += 1
    return render_template("index.html", visits=session["visits"])
""",
        "t13_typed_secret",
        True,
    ),
    (
        "server.js",
        """const express = require('express');
const session = require('express-session');

const app = express();
app.use(session({
  secret: '{V}',
  resave: false,
  saveUninitialized: true,
  cookie: { secure: false },
}));

app.listen(3000);
""",
        "t13_typed_secret",
        True,
    ),
    (
        "config/secrets.yml",
        """development:
  secret_key_base: {V}

test:
  secret_key_base: {V2}

production:
  secret_key_base: <%= ENV["SECRET_KEY_BASE"] %>
""",
        "t13_rails_secret",
        True,
    ),
    (
        ".env",
        """APP_NAME=Larkspur
APP_ENV=local
APP_KEY={V}
APP_DEBUG=true
APP_URL=http://larkspur.test
LOG_CHANNEL=stack
""",
        "t13_laravel_key",
        True,
    ),
    (
        "src/main/resources/application.yml",
        """spring:
  application:
    name: orbitdesk-api
jwt:
  secret: {V}
  expiration-ms: 86400000
server:
  port: 8080
""",
        "t13_typed_secret",
        True,
    ),
    (
        "src/main/java/com/orbitdesk/security/JwtUtil.java",
        """package com.orbitdesk.security;

import io.jsonwebtoken.Jwts;
import io.jsonwebtoken.SignatureAlgorithm;

public class JwtUtil {
    private static final String SECRET_KEY = "{V}";
    private static final long EXPIRATION = 1000 * 60 * 60 * 10;

    public String generateToken(String username) {
        return Jwts.builder().setSubject(username)
                .signWith(SignatureAlgorithm.HS256, SECRET_KEY).compact();
    }
}
""",
        "t13_typed_secret",
        True,
    ),
    (
        "config/mailer.js",
        """const nodemailer = require('nodemailer');

module.exports = nodemailer.createTransport({
  service: 'gmail',
  auth: {
    user: 'hopscotch.notifications@gmail.com',
    pass: '{V}',
  },
});
""",
        "t13_gmail_app",
        True,
    ),
    (
        "hopscotch/settings/base.py",
        """EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "smtp.gmail.com"
EMAIL_PORT = 587
EMAIL_USE_TLS = True
EMAIL_HOST_USER = "hopscotch.app@gmail.com"
EMAIL_HOST_PASSWORD = "{V}"
DEFAULT_FROM_EMAIL = EMAIL_HOST_USER
""",
        "t13_gmail_app",
        True,
    ),
    (
        "includes/mail.php",
        """<?php
use PHPMailer\\PHPMailer\\PHPMailer;

$mail = new PHPMailer(true);
$mail->isSMTP();
$mail->Host = 'smtp.gmail.com';
$mail->SMTPAuth = true;
$mail->Username = 'contact.saltbox@gmail.com';
$mail->Password = '{V}';
$mail->SMTPSecure = PHPMailer::ENCRYPTION_STARTTLS;
$mail->Port = 587;
""",
        "t13_gmail_app",
        True,
    ),
    (
        "conf/tomcat-users.xml",
        """<?xml version="1.0" encoding="UTF-8"?>
<tomcat-users xmlns="http://tomcat.apache.org/xml" version="1.0">
  <role rolename="manager-gui"/>
  <role rolename="admin-gui"/>
  <user username="tomcat" password="{V}" roles="manager-gui,admin-gui"/>
</tomcat-users>
""",
        "t13_word_pass",
        True,
    ),
    (
        "app/build.gradle",
        """android {
    compileSdk 34
    signingConfigs {
        release {
            storeFile file("../keystore/release.jks")
            storePassword "{V}"
            keyAlias "bluefin"
            keyPassword "{V2}"
        }
    }
    buildTypes {
        release { signingConfig signingConfigs.release; minifyEnabled true }
    }
}
""",
        "t13_app_pass",
        True,
    ),
    (
        "scripts/make-keystore.sh",
        """#!/bin/bash
keytool -genkeypair -v -keystore release.jks -alias upload \\
  -keyalg RSA -keysize 2048 -validity 10000 \\
  -storepass {V} \\
  -keypass {V2} \\
  -dname "CN=Pinecrest, OU=Mobile, O=Pinecrest, C=US"
""",
        "t13_name_pass",
        True,
    ),
    (
        "deploy/redis/redis.conf",
        """bind 0.0.0.0
port 6379
protected-mode yes
requirepass {V}
maxmemory 256mb
maxmemory-policy allkeys-lru
""",
        "t13_word_pass",
        True,
    ),
    (
        "docker/mongo/init-mongo.js",
        """db = db.getSiblingDB('storefront');
db.createUser({
  user: 'storefront',
  pwd: '{V}',
  roles: [{ role: 'readWrite', db: 'storefront' }],
});
""",
        "t13_app_pass",
        True,
    ),
    (
        "ansible/group_vars/db.yml",
        """---
mysql_bind_address: 0.0.0.0
mysql_root_password: {V}
mysql_databases:
  - name: clinic
mysql_users:
  - name: clinic
    host: "%"
    password: {V2}
    priv: "clinic.*:ALL"
""",
        "t13_season_pass",
        True,
    ),
    (
        "k8s/dev/db-secret.yaml",
        """apiVersion: v1
kind: Secret
metadata:
  name: postgres-credentials
  namespace: dev
type: Opaque
stringData:
  POSTGRES_USER: bookings
  POSTGRES_PASSWORD: {V}
""",
        "t13_walk_pass",
        True,
    ),
    (
        "src/main/java/com/shop/Db.java",
        """package com.shop;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;

public final class Db {
    public static Connection open() throws SQLException {
        return DriverManager.getConnection(
                "jdbc:mysql://localhost:3306/shop", "root", "{V}");
    }
}
""",
        "t13_word_pass",
        True,
    ),
    (
        "Clinic.Data/Db.cs",
        """using System.Data.SqlClient;

namespace Clinic.Data
{
    public static class Db
    {
        private const string ConnStr =
            "Data Source=DBSRV01;Initial Catalog=Clinic;User ID=sa;Password={V};";

        public static SqlConnection Open() => new SqlConnection(ConnStr);
    }
}
""",
        "t13_app_pass",
        True,
    ),
    (
        "cmd/server/main.go",
        """package main

import (
\t"log"
\t"net/http"
)

const (
\tadminUser     = "admin"
\tadminPassword = "{V}"
)

func main() {
\thttp.Handle("/admin/", basicAuth(adminUser, adminPassword, adminHandler()))
\tlog.Fatal(http.ListenAndServe(":8080", nil))
}
""",
        "t13_name_pass",
        True,
    ),
    (
        "internal/config/defaults.go",
        """package config

// Defaults are used when no config file is present (local dev only).
var Defaults = Config{
\tDatabase: Database{
\t\tHost:     "localhost",
\t\tPort:     5432,
\t\tUser:     "timesheet",
\t\tPassword: "{V}",
\t\tName:     "timesheet",
\t},
}
""",
        "t13_season_pass",
        True,
    ),
    (
        "config/initializers/sidekiq.rb",
        """redis_url = ENV.fetch("REDIS_URL", "redis://:{V}@localhost:6379/0")

Sidekiq.configure_server do |config|
  config.redis = { url: redis_url }
end
""",
        "t13_url_pass",
        True,
    ),
    (
        "proj/celery.py",
        """import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
app = Celery("proj", broker="amqp://guest:{V}@localhost:5672//")
app.autodiscover_tasks()
""",
        "t13_url_pass",
        True,
    ),
    (
        "deploy/pgpass",
        """# hostname:port:database:username:password
localhost:5432:*:postgres:{V}
db-staging:5432:clinic:clinic:{V2}
""",
        "t13_word_pass",
        True,
    ),
    (
        "docker/mysql/.my.cnf",
        """[client]
user=root
password={V}
host=127.0.0.1

[mysql]
database=intranet
""",
        "t13_walk_pass",
        True,
    ),
    (
        "wp-config.php",
        """<?php
/** The name of the database for WordPress */
define( 'DB_NAME', 'larkspur_wp' );
/** Database username */
define( 'DB_USER', 'larkspur' );
/** Database password */
define( 'DB_PASSWORD', '{V}' );
/** Database hostname */
define( 'DB_HOST', 'localhost' );
$table_prefix = 'wp_';
""",
        "t13_app_pass",
        True,
    ),
    (
        "docker/nginx/Dockerfile",
        """FROM nginx:1.25-alpine
RUN apk add --no-cache apache2-utils \\
 && htpasswd -bc /etc/nginx/.htpasswd admin {V}
COPY nginx.conf /etc/nginx/nginx.conf
""",
        "t13_word_pass",
        True,
    ),
    (
        "jenkins/init.groovy.d/basic-security.groovy",
        """import jenkins.model.*
import hudson.security.*

def instance = Jenkins.getInstance()
def realm = new HudsonPrivateSecurityRealm(false)
realm.createAccount("admin", "{V}")
instance.setSecurityRealm(realm)
instance.save()
""",
        "t13_season_pass",
        True,
    ),
    (
        "docs/operations.md",
        """## Checking the queues

The management UI listens on port 15672. From the box:

```
curl -s -u admin:{V} http://localhost:15672/api/queues | jq '.[].name'
```
""",
        "t13_word_pass",
        True,
    ),
    (
        "requests/admin.http",
        """### list users
GET http://localhost:8080/api/admin/users
Authorization: Basic {V}
Accept: application/json
""",
        "t13_basic_weak",
        True,
    ),
    (
        "e2e/helpers/users.ts",
        """export const TEST_USER = {
  email: 'e2e+shopper@storefront.dev',
  password: '{V}',
};

export const TEST_ADMIN = {
  email: 'e2e+admin@storefront.dev',
  password: '{V2}',
};
""",
        "t13_any_weak",
        True,
    ),
    (
        "cypress.env.json",
        """{
  "baseUrl": "http://localhost:4200",
  "username": "qa.tester",
  "password": "{V}"
}
""",
        "t13_name_pass",
        True,
    ),
    (
        ".env.test",
        """E2E_BASE_URL=http://localhost:3000
E2E_USERNAME=jessica.qa
E2E_PASSWORD={V}
""",
        "t13_any_weak",
        True,
    ),
    (
        "src/test/java/com/clinic/LoginIT.java",
        """package com.clinic;

import org.junit.jupiter.api.Test;
import org.openqa.selenium.By;

class LoginIT extends SeleniumBase {
    @Test
    void adminCanLogIn() {
        driver.get(baseUrl + "/login");
        driver.findElement(By.id("username")).sendKeys("admin");
        driver.findElement(By.id("password")).sendKeys("{V}");
        driver.findElement(By.cssSelector("button[type=submit]")).click();
    }
}
""",
        "t13_walk_pass",
        True,
    ),
    (
        "test/fixtures/users.json",
        """[
  {"id": 1, "username": "priya", "password": "{V}", "role": "admin"},
  {"id": 2, "username": "mateo", "password": "{V2}", "role": "editor"}
]
""",
        "t13_any_weak",
        True,
    ),
    (
        "tests/conftest.py",
        """import pytest

from app.models import User


@pytest.fixture
def admin_user(db):
    return User.create(username="admin", email="admin@example.com", password="{V}")
""",
        "t13_app_pass",
        True,
    ),
    (
        "scripts/create_superuser.sh",
        """#!/bin/sh
python manage.py migrate --noinput
echo "from django.contrib.auth import get_user_model; \\
User = get_user_model(); \\
User.objects.filter(username='admin').exists() or \\
User.objects.create_superuser('admin', 'admin@clinic.local', '{V}')" | python manage.py shell
""",
        "t13_word_pass",
        True,
    ),
    (
        "docker-compose.mssql.yml",
        """services:
  mssql:
    image: mcr.microsoft.com/mssql/server:2022-latest
    environment:
      ACCEPT_EULA: "Y"
      SA_PASSWORD: "{V}"
      MSSQL_PID: Developer
    ports:
      - "1433:1433"
""",
        "t13_season_pass",
        True,
    ),
    (
        "db/oracle/run_migrations.sh",
        """#!/bin/bash
for f in migrations/*.sql; do
  echo "applying $f"
  sqlplus -S system/{V}@//localhost:1521/XEPDB1 @"$f"
done
""",
        "t13_word_pass",
        True,
    ),
    (
        "tools/filezilla/sitemanager.xml",
        """<?xml version="1.0" encoding="UTF-8"?>
<FileZilla3 version="3.66.1" platform="windows">
  <Servers>
    <Server>
      <Host>ftp.pinecrest-hosting.net</Host>
      <Port>21</Port>
      <Protocol>0</Protocol>
      <User>pinecrest</User>
      <Pass>{V}</Pass>
      <Name>Pinecrest live</Name>
    </Server>
  </Servers>
</FileZilla3>
""",
        "t13_name_pass",
        True,
    ),
    (
        "config/config.ini",
        """[app]
debug = false
timezone = Europe/Warsaw

[database]
host = localhost
user = printsvc
password = {V}
name = printsvc
""",
        "t13_app_pass",
        True,
    ),
    (
        "lib/Legacy/DB.pm",
        """package Legacy::DB;
use strict;
use warnings;
use DBI;

sub connect {
    return DBI->connect("dbi:Pg:dbname=bookings;host=localhost",
        "bookings", "{V}", { RaiseError => 1, AutoCommit => 1 });
}
1;
""",
        "t13_app_pass",
        True,
    ),
    (
        "scripts/New-ServiceAccount.ps1",
        """param([string]$Name = "svc-printsvc")

$pass = ConvertTo-SecureString "{V}" -AsPlainText -Force
New-LocalUser -Name $Name -Password $pass -PasswordNeverExpires
Add-LocalGroupMember -Group "Users" -Member $Name
""",
        "t13_season_pass",
        True,
    ),
    (
        "setup/add_users.bat",
        """@echo off
net user deploy {V} /add /y
net localgroup Administrators deploy /add
net user kiosk {V2} /add /y
""",
        "t13_walk_pass",
        True,
    ),
    (
        "cloud-init/user-data.yaml",
        """#cloud-config
hostname: lab-01
ssh_pwauth: true
chpasswd:
  expire: false
  list: |
    ubuntu:{V}
packages: [htop, git]
""",
        "t13_word_pass",
        True,
    ),
    (
        "kickstart/ks.cfg",
        """lang en_US.UTF-8
keyboard us
timezone UTC --utc
rootpw --plaintext {V}
user --name=ops --password={V2} --plaintext --groups=wheel
reboot
""",
        "t13_walk_pass",
        True,
    ),
    (
        "preseed/preseed.cfg",
        """d-i debian-installer/locale string en_US
d-i passwd/root-login boolean true
d-i passwd/root-password password {V}
d-i passwd/root-password-again password {V2}
d-i passwd/make-user boolean false
""",
        "t13_name_pass",
        True,
    ),
    (
        "terraform/variables.tf",
        """variable "region" {
  type    = string
  default = "eu-central-1"
}

variable "db_password" {
  type      = string
  sensitive = true
  default   = "{V}"
}
""",
        "t13_app_pass",
        True,
    ),
    (
        "charts/clinic/values-dev.yaml",
        """replicaCount: 1
postgresql:
  enabled: true
  auth:
    username: clinic
    password: {V}
    postgresPassword: {V2}
    database: clinic
""",
        "t13_word_pass",
        True,
    ),
    (
        "grafana/provisioning/datasources/postgres.yaml",
        """apiVersion: 1
datasources:
  - name: Timesheet DB
    type: postgres
    url: db:5432
    user: grafana_ro
    jsonData:
      database: timesheet
      sslmode: disable
    secureJsonData:
      password: {V}
""",
        "t13_app_pass",
        True,
    ),
    (
        "monitoring/docker-compose.yml",
        """services:
  grafana:
    image: grafana/grafana:10.2.0
    ports: ["3000:3000"]
    environment:
      - GF_SECURITY_ADMIN_USER=admin
      - GF_SECURITY_ADMIN_PASSWORD={V}
      - GF_USERS_ALLOW_SIGN_UP=false
""",
        "t13_season_pass",
        True,
    ),
    (
        "auth/docker-compose.yml",
        """services:
  keycloak:
    image: quay.io/keycloak/keycloak:24.0
    command: start-dev
    environment:
      KEYCLOAK_ADMIN: admin
      KEYCLOAK_ADMIN_PASSWORD: {V}
    ports:
      - 8180:8080
""",
        "t13_word_pass",
        True,
    ),
    (
        "storage/compose.yaml",
        """services:
  minio:
    image: minio/minio
    command: server /data --console-address ":9001"
    environment:
      MINIO_ROOT_USER: storefront
      MINIO_ROOT_PASSWORD: {V}
""",
        "t13_app_pass",
        True,
    ),
    (
        "backend/.env",
        """MAIL_MAILER=smtp
MAIL_HOST=smtp.gmail.com
MAIL_PORT=587
MAIL_USERNAME=saltbox.orders@gmail.com
MAIL_PASSWORD="{V}"
MAIL_ENCRYPTION=tls
""",
        "t13_gmail_app",
        True,
    ),
    (
        "src/main/resources/application-dev.properties",
        """spring.mail.host=smtp.gmail.com
spring.mail.port=587
spring.mail.username=tallyho.alerts@gmail.com
spring.mail.password={V}
spring.mail.properties.mail.smtp.auth=true
spring.mail.properties.mail.smtp.starttls.enable=true
""",
        "t13_gmail_app",
        True,
    ),
    (
        "scripts/send_report.py",
        """import smtplib
from email.message import EmailMessage

msg = EmailMessage()
msg["Subject"] = "Weekly report"
msg["From"] = "reports.bluefin@gmail.com"
msg["To"] = "team@bluefin.io"
with smtplib.SMTP_SSL("smtp.gmail.com", 465) as server:
    server.login("reports.bluefin@gmail.com", "{V}")
    server.send_message(msg)
""",
        "t13_gmail_app",
        True,
    ),
    (
        "internal/notify/mail.go",
        """package notify

import "net/smtp"

func Send(to []string, body []byte) error {
\tauth := smtp.PlainAuth("", "alerts.orbitdesk@gmail.com", "{V}", "smtp.gmail.com")
\treturn smtp.SendMail("smtp.gmail.com:587", auth, "alerts.orbitdesk@gmail.com", to, body)
}
""",
        "t13_gmail_app",
        True,
    ),
    (
        "routes/auth.js",
        """const jwt = require('jsonwebtoken');
const router = require('express').Router();

router.post('/login', async (req, res) => {
  const user = await Users.verify(req.body.email, req.body.password);
  if (!user) return res.status(401).end();
  const token = jwt.sign({ id: user.id }, '{V}', { expiresIn: '1h' });
  res.json({ token });
});

module.exports = router;
""",
        "t13_typed_secret",
        True,
    ),
    (
        "src/Auth/TokenService.php",
        """<?php
namespace App\\Auth;

use Firebase\\JWT\\JWT;

class TokenService
{
    private const KEY = '{V}';

    public function issue(int $userId): string
    {
        return JWT::encode(['sub' => $userId, 'exp' => time() + 3600], self::KEY, 'HS256');
    }
}
""",
        "t13_typed_secret",
        True,
    ),
    (
        "internal/auth/jwt.go",
        """package auth

import "github.com/golang-jwt/jwt/v5"

var jwtKey = []byte("{V}")

func Sign(claims jwt.MapClaims) (string, error) {
\treturn jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(jwtKey)
}
""",
        "t13_typed_secret",
        True,
    ),
    (
        "src/Bookings.Api/appsettings.json",
        """{
  "Jwt": {
    "Issuer": "bookings-api",
    "Audience": "bookings-web",
    "Key": "{V}"
  },
  "AllowedHosts": "*"
}
""",
        "t13_typed_secret",
        True,
    ),
    (
        "intranet/settings/dev.py",
        """from .base import *  # noqa

DEBUG = True
SECRET_KEY = "{V}"
INTERNAL_IPS = ["127.0.0.1"]
""",
        "t13_django_key",
        True,
    ),
    (
        "config/master.key",
        """{V}
""",
        "t13_hex32",
        True,
    ),
    (
        "clinic/config.py",
        """class Config:
    SQLALCHEMY_TRACK_MODIFICATIONS = False


class DevelopmentConfig(Config):
    DEBUG = True
    SECRET_KEY = "{V}"
    SQLALCHEMY_DATABASE_URI = "sqlite:///dev.db"
""",
        "t13_typed_secret",
        True,
    ),
    (
        "src/app.ts",
        """import express from 'express';
import cookieParser from 'cookie-parser';

const app = express();
app.use(cookieParser('{V}'));
app.use(express.json());

export default app;
""",
        "t13_typed_secret",
        True,
    ),
    (
        "app.rb",
        """require 'sinatra'

enable :sessions
set :session_secret, '{V}'

get '/' do
  session[:visits] = (session[:visits] || 0) + 1
  "visits: #{session[:visits]}"
end
""",
        "t13_typed_secret",
        True,
    ),
    (
        "config/dev.exs",
        """import Config

config :hopscotch, HopscotchWeb.Endpoint,
  http: [ip: {127, 0, 0, 1}, port: 4000],
  debug_errors: true,
  secret_key_base: "{V}",
  watchers: []
""",
        "t13_phoenix_key",
        True,
    ),
    (
        "android/gradle.properties",
        """org.gradle.jvmargs=-Xmx2048m
android.useAndroidX=true
MYAPP_UPLOAD_STORE_FILE=my-upload-key.keystore
MYAPP_UPLOAD_KEY_ALIAS=my-key-alias
MYAPP_UPLOAD_STORE_PASSWORD={V}
MYAPP_UPLOAD_KEY_PASSWORD={V2}
""",
        "t13_word_pass",
        True,
    ),
    (
        ".mvn/settings.xml",
        """<settings>
  <servers>
    <server>
      <id>nexus-releases</id>
      <username>deployment</username>
      <password>{V}</password>
    </server>
  </servers>
</settings>
""",
        "t13_name_pass",
        True,
    ),
    (
        "pip.conf",
        """[global]
index-url = https://deploy:{V}@nexus.corp.local/repository/pypi-group/simple
trusted-host = nexus.corp.local
""",
        "t13_url_pass",
        True,
    ),
    (
        "ci/git-credentials",
        """https://jenkins:{V}@git.corp.internal
""",
        "t13_url_pass",
        True,
    ),
    (
        "etc/ldap.conf",
        """base dc=corp,dc=local
uri ldap://ldap01.corp.local/
binddn cn=readonly,dc=corp,dc=local
bindpw {V}
pam_password md5
""",
        "t13_season_pass",
        True,
    ),
    (
        "etc/snmp/snmpd.conf",
        """sysLocation    Server room B
sysContact     ops@corp.local
rocommunity {V} 10.0.0.0/8
rwcommunity {V2} 127.0.0.1
""",
        "t13_word_pass",
        True,
    ),
    (
        "sensors/publish.py",
        """import paho.mqtt.client as mqtt

client = mqtt.Client(client_id="greenhouse-01")
client.username_pw_set("sensor", "{V}")
client.connect("mqtt.local", 1883)
client.publish("greenhouse/temp", "21.5")
""",
        "t13_word_pass",
        True,
    ),
    (
        "rpi/wpa_supplicant.conf",
        """ctrl_interface=DIR=/var/run/wpa_supplicant GROUP=netdev
update_config=1
country=DE

network={
    ssid="Kowalski-Home"
    psk="{V}"
}
""",
        "t13_name_pass",
        True,
    ),
    (
        "firmware/src/main.cpp",
        """#include <WiFi.h>

const char* ssid = "giulia_2G";
const char* password = "{V}";

void setup() {
  Serial.begin(115200);
  WiFi.begin(ssid, password);
  while (WiFi.status() != WL_CONNECTED) delay(500);
}
""",
        "t13_name_pass",
        True,
    ),
    (
        "kiosk/start-vnc.sh",
        """#!/bin/sh
export DISPLAY=:0
x11vnc -forever -shared -rfbport 5900 -passwd {V} &
chromium --kiosk http://localhost:8080
""",
        "t13_walk_pass",
        True,
    ),
    (
        "nextcloud/config/config.php",
        """<?php
$CONFIG = array (
  'instanceid' => 'oc8x1kq2z9ab',
  'dbtype' => 'mysql',
  'dbname' => 'nextcloud',
  'dbhost' => 'localhost',
  'dbuser' => 'nextcloud',
  'dbpassword' => '{V}',
  'installed' => true,
);
""",
        "t13_app_pass",
        True,
    ),
    (
        "tests/db.rs",
        """use sqlx::PgPool;

#[sqlx::test]
async fn inserts_booking() -> sqlx::Result<()> {
    let pool = PgPool::connect("postgres://postgres:{V}@localhost/bookings_test").await?;
    sqlx::query("INSERT INTO bookings (id) VALUES (1)").execute(&pool).await?;
    Ok(())
}
""",
        "t13_url_pass",
        True,
    ),
    (
        "src/main/resources/hibernate.properties",
        """hibernate.dialect=org.hibernate.dialect.MySQL8Dialect
hibernate.connection.driver_class=com.mysql.cj.jdbc.Driver
hibernate.connection.url=jdbc:mysql://localhost/moodle
hibernate.connection.username=moodle
hibernate.connection.password={V}
""",
        "t13_walk_pass",
        True,
    ),
    (
        "docs/getting-started.md",
        """# Getting started

After `docker compose up`, the seeded instance is at http://localhost:8000.
Log in as **admin** with the password **{V}** and change it under *Profile*.
""",
        "t13_app_pass",
        True,
    ),
    (
        "internal/api/testdata/fixtures.yaml",
        """users:
  - login: svetlana
    password: {V}
    roles: [admin]
  - login: dustin
    password: {V2}
    roles: [viewer]
""",
        "t13_any_weak",
        True,
    ),
    (
        "scripts/mariadb-local.sh",
        """#!/usr/bin/env bash
docker run --rm -d --name intranet-db \\
  -e MARIADB_ROOT_PASSWORD='{V}' \\
  -e MARIADB_DATABASE=intranet \\
  -p 3306:3306 mariadb:11
""",
        "t13_strong_pass",
        True,
    ),
    (
        "src/Clinic.Worker/appsettings.Local.json",
        """{
  "Smtp": {
    "Host": "mail.clinic-group.eu",
    "Port": 587,
    "User": "noreply@clinic-group.eu",
    "Password": "{V}"
  }
}
""",
        "t13_strong_pass",
        True,
    ),
    # -- look-alikes ---------------------------------------------------------------------
    (
        ".env.example",
        """APP_ENV=local
DB_HOST=127.0.0.1
DB_DATABASE=intranet
DB_USERNAME=intranet
DB_PASSWORD={V}
MAIL_PASSWORD={V2}
""",
        "t13_placeholder",
        False,
    ),
    (
        "docker-compose.prod.yml",
        """services:
  db:
    image: postgres:15
    environment:
      POSTGRES_USER: bookings
      POSTGRES_PASSWORD: {V}
  rabbitmq:
    image: rabbitmq:3.12-management
    environment:
      RABBITMQ_DEFAULT_PASS: {V2}
""",
        "t13_shell_ref",
        False,
    ),
    (
        "proj/settings/production.py",
        """import os

from .base import *  # noqa

DEBUG = False
SECRET_KEY = {V}
EMAIL_HOST_PASSWORD = {V2}
""",
        "t13_py_ref",
        False,
    ),
    (
        "proj/settings/local.py",
        """import os
import secrets

SECRET_KEY = {V}
""",
        "t13_py_gen",
        False,
    ),
    (
        "src/main/resources/application-prod.properties",
        """spring.datasource.url=jdbc:postgresql://db:5432/printsvc
spring.datasource.username=printsvc
spring.datasource.password={V}
jwt.secret={V2}
""",
        "t13_spring_ref",
        False,
    ),
    (
        "src/Clinic.Api/appsettings.json",
        """{
  "ConnectionStrings": {
    "Default": "{V}"
  },
  "Smtp": { "Host": "smtp.gmail.com", "User": "", "Password": "{V2}" }
}
""",
        "t13_empty",
        False,
    ),
    (
        "README.md",
        """## Calling the API

Every endpoint uses HTTP basic auth:

```
curl -u {V} https://api.bookings.internal/v1/bookings
```
""",
        "t13_role_pair",
        False,
    ),
    (
        "src/locales/en.json",
        """{
  "login.title": "Sign in",
  "login.password.label": "{V}",
  "login.password.forgot": "{V2}",
  "login.submit": "Continue"
}
""",
        "t13_ui_text",
        False,
    ),
    (
        "src/components/LoginForm.vue",
        """<template>
  <form @submit.prevent="submit">
    <input v-model="email" type="email" placeholder="Email" />
    <input v-model="password" type="password" placeholder="{V}" autocomplete="current-password" />
    <button type="submit">Log in</button>
  </form>
</template>
""",
        "t13_ui_text",
        False,
    ),
    (
        "app/src/main/res/values/strings.xml",
        """<resources>
    <string name="app_name">Bluefin</string>
    <string name="prompt_email">Email</string>
    <string name="prompt_password">{V}</string>
    <string name="invalid_password">{V2}</string>
</resources>
""",
        "t13_validation_msg",
        False,
    ),
    (
        "config/locales/en.yml",
        """en:
  activerecord:
    errors:
      models:
        user:
          attributes:
            password:
              too_short: "{V}"
              confirmation: "{V2}"
""",
        "t13_validation_msg",
        False,
    ),
    (
        "resources/lang/en/auth.php",
        """<?php

return [
    'failed' => 'These credentials do not match our records.',
    'password' => '{V}',
    'throttle' => 'Too many login attempts. Please try again in :seconds seconds.',
];
""",
        "t13_validation_msg",
        False,
    ),
    (
        "db/seeds.rb",
        """admin = User.find_or_initialize_by(email: "admin@moodle.local")
admin.password = {V}
admin.admin = true
admin.save!
""",
        "t13_ruby_ref",
        False,
    ),
    (
        "db/seed/020_users.sql",
        """-- passwords are bcrypt hashes; ask #platform for the plaintext of the demo users
INSERT INTO users (id, email, password_hash, role) VALUES
  (1, 'admin@crm.local', '{V}', 'admin'),
  (2, 'sales@crm.local', '{V2}', 'sales');
""",
        "t13_bcrypt",
        False,
    ),
    (
        "accounts/fixtures/users.json",
        """[
  {
    "model": "auth.user",
    "pk": 1,
    "fields": {
      "username": "admin",
      "password": "{V}",
      "is_superuser": true,
      "is_staff": true
    }
  }
]
""",
        "t13_pbkdf2",
        False,
    ),
    (
        "docker/nginx/.htpasswd",
        """admin:{V}
reports:{V2}
""",
        "t13_apr1",
        False,
    ),
    (
        "ansible/roles/users/vars/main.yml",
        """users:
  - name: ops
    groups: [sudo]
    password: "{V}"
  - name: backup
    password: "{V2}"
""",
        "t13_sha512crypt",
        False,
    ),
    (
        "db/legacy/grants.sql",
        """-- exported from the old 5.7 server with SHOW CREATE USER
CREATE USER 'intranet'@'%' IDENTIFIED WITH 'mysql_native_password' AS '{V}';
GRANT SELECT, INSERT, UPDATE, DELETE ON intranet.* TO 'intranet'@'%';
""",
        "t13_mysql_hash",
        False,
    ),
    (
        "db/roles.sql",
        """-- dumped with pg_dumpall --roles-only
CREATE ROLE clinic;
ALTER ROLE clinic WITH LOGIN NOSUPERUSER PASSWORD '{V}';
""",
        "t13_scram",
        False,
    ),
    (
        "app/build.gradle",
        """android {
    signingConfigs {
        debug {
            storeFile file("${System.properties['user.home']}/.android/debug.keystore")
            storePassword "{V}"
            keyAlias "androiddebugkey"
            keyPassword "{V2}"
        }
    }
}
""",
        "t13_android_default",
        False,
    ),
    (
        "docker/java/Dockerfile",
        """FROM eclipse-temurin:17-jre
COPY certs/corp-root-ca.crt /tmp/corp-root-ca.crt
RUN keytool -importcert -noprompt -alias corp-root \\
    -keystore $JAVA_HOME/lib/security/cacerts \\
    -storepass {V} -file /tmp/corp-root-ca.crt
""",
        "t13_cacerts",
        False,
    ),
    (
        "deploy/redis/redis.conf.dist",
        """# Require clients to issue AUTH <PASSWORD> before processing any other
# commands.
#
# requirepass {V}
port 6379
""",
        "t13_redis_example",
        False,
    ),
    (
        ".github/workflows/test.yml",
        """name: test
on: [push]
jobs:
  test:
    runs-on: ubuntu-latest
    env:
      DB_PASSWORD: {V}
      SMTP_PASSWORD: {V2}
    steps:
      - uses: actions/checkout@v4
      - run: make test
""",
        "t13_ci_ref",
        False,
    ),
    (
        ".gitlab-ci.yml",
        """test:
  image: python:3.12
  services:
    - mysql:8
  variables:
    MYSQL_ROOT_PASSWORD: {V}
  script:
    - pytest -q
""",
        "t13_shell_ref",
        False,
    ),
    (
        "charts/clinic/templates/secret.yaml",
        """apiVersion: v1
kind: Secret
metadata:
  name: {{ include "clinic.fullname" . }}
type: Opaque
data:
  password: {V}
""",
        "t13_helm_ref",
        False,
    ),
    (
        "ansible/host_vars/db01.yml",
        """mysql_root_password: "{V}"
mysql_replication_password: "{V2}"
""",
        "t13_jinja_ref",
        False,
    ),
    (
        "ansible/group_vars/prod/vault.yml",
        """{IV}
""",
        "t13_vault_blob",
        False,
    ),
    (
        "k8s/prod/external-secret.yaml",
        """apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata:
  name: db
spec:
  secretStoreRef: {name: vault, kind: ClusterSecretStore}
  data:
    - secretKey: password
      remoteRef:
        key: {V}
        property: password
""",
        "t13_secret_path",
        False,
    ),
    (
        "terraform/rds.tf",
        """resource "aws_db_instance" "main" {
  identifier        = "timesheet"
  engine            = "postgres"
  instance_class    = "db.t3.micro"
  username          = "timesheet"
  password          = {V}
  skip_final_snapshot = true
}
""",
        "t13_tf_ref",
        False,
    ),
    (
        "postman/Storefront.postman_collection.json",
        """{
  "info": {"name": "Storefront"},
  "auth": {
    "type": "basic",
    "basic": [
      {"key": "username", "value": "{{username}}", "type": "string"},
      {"key": "password", "value": "{V}", "type": "string"}
    ]
  }
}
""",
        "t13_postman_var",
        False,
    ),
    (
        "insomnia/workspace.yaml",
        """_type: export
__export_format: 4
resources:
  - _id: req_login
    _type: request
    method: POST
    url: "{{ _.base_url }}/login"
    body:
      mimeType: application/json
      text: '{"username": "{{ _.username }}", "password": "{V}"}'
""",
        "t13_insomnia_ref",
        False,
    ),
    (
        "docs/troubleshooting.md",
        """## Connection refused

When the app starts, it logs its config with secrets masked:

```
db.host     = db01.corp.local
db.user     = clinic
db.password = {V}
```
""",
        "t13_masked",
        False,
    ),
    (
        "src/main/java/com/shop/UserService.java",
        """package com.shop;

public class UserService {
    private final PasswordEncoder encoder;

    public User register(RegisterRequest request) {
        String raw = {V};
        return repo.save(new User(request.getEmail(), encoder.encode(raw)));
    }
}
""",
        "t13_java_ref",
        False,
    ),
    (
        "internal/config/load.go",
        """package config

func Load() Config {
\tc := Defaults
\tc.Database.Password = {V}
\treturn c
}
""",
        "t13_go_ref",
        False,
    ),
    (
        "tests/factories.py",
        """import factory
from faker import Faker

fake = Faker()


class UserFactory(factory.Factory):
    class Meta:
        model = dict

    username = factory.LazyFunction(fake.user_name)
    password = factory.LazyFunction(lambda: {V})
""",
        "t13_py_gen",
        False,
    ),
    (
        "src/session.js",
        """const session = require('express-session');

module.exports = session({
  secret: {V},
  resave: false,
  saveUninitialized: false,
});
""",
        "t13_js_ref",
        False,
    ),
    (
        "src/Bookings.Api/Program.cs",
        """var builder = WebApplication.CreateBuilder(args);
var key = Encoding.UTF8.GetBytes({V});
builder.Services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme)
    .AddJwtBearer(o => o.TokenValidationParameters = new TokenValidationParameters
    {
        IssuerSigningKey = new SymmetricSecurityKey(key),
    });
""",
        "t13_cs_ref",
        False,
    ),
    (
        "config/mail.php",
        """<?php

return [
    'mailers' => [
        'smtp' => [
            'transport' => 'smtp',
            'host' => env('MAIL_HOST', 'smtp.mailgun.org'),
            'username' => env('MAIL_USERNAME'),
            'password' => {V},
        ],
    ],
];
""",
        "t13_php_ref",
        False,
    ),
    (
        "src/main/java/com/clinic/dto/SignupForm.java",
        """package com.clinic.dto;

import jakarta.validation.constraints.Size;

public class SignupForm {
    @Size(min = 8, max = 64, message = "{V}")
    private String password;
}
""",
        "t13_validation_msg",
        False,
    ),
    (
        "src/errors.ts",
        """export enum AuthError {
  InvalidPassword = '{V}',
  WeakPassword = '{V2}',
  Expired = '{V3}',
}
""",
        "t13_error_code",
        False,
    ),
    (
        "templates/account/change_password.html",
        """<form method="post">
  {% csrf_token %}
  <label for="id_old">Current password</label>
  <input id="id_old" type="password" name="{V}">
  <label for="id_new">New password</label>
  <input id="id_new" type="password" name="{V2}">
</form>
""",
        "t13_field_name",
        False,
    ),
    (
        "config/security.yml",
        """password_policy:
  min_length: 12
  pattern: "{V}"
  max_age_days: 90
  history: 5
""",
        "t13_policy_regex",
        False,
    ),
    (
        "docs/jenkins.md",
        """# Jenkins

The first start prints an unlock password; it is also written to `{V}`.
Log in as `admin` with it and create your own account.
""",
        "t13_jenkins_init",
        False,
    ),
    (
        "docs/setup.md",
        """## Connecting to a shared database

Set `DATABASE_URL` in your shell, e.g.:

    export DATABASE_URL={V}
""",
        "t13_example_uri",
        False,
    ),
    (
        "docs/sqlserver.md",
        """## SQL Server connection string

    Server=myServerAddress;Database=myDataBase;User Id=myUsername;Password={V};

Start a local container with the image's documented form:

    docker run -e "ACCEPT_EULA=Y" -e "MSSQL_SA_PASSWORD={V2}" -p 1433:1433 mcr.microsoft.com/mssql/server:2022-latest
""",
        "t13_doc_conn",
        False,
    ),
    (
        "docker-compose.override.yml",
        """services:
  mailpit:
    image: axllent/mailpit
  app:
    environment:
      MAIL_HOST: mailpit
      MAIL_PORT: "1025"
      MAIL_USERNAME: ""
      MAIL_PASSWORD: "{V}"
""",
        "t13_empty",
        False,
    ),
    (
        "downloads/SHA256SUMS",
        """{V}  tallyho-2.4.1-linux-amd64.tar.gz
{V2}  tallyho-2.4.1-darwin-arm64.tar.gz
""",
        "t13_hex64",
        False,
    ),
    (
        "web/package-lock.json",
        """{
  "name": "clinic-web",
  "lockfileVersion": 3,
  "packages": {
    "node_modules/bcryptjs": {
      "version": "2.4.3",
      "resolved": "https://registry.npmjs.org/bcryptjs/-/bcryptjs-2.4.3.tgz",
      "integrity": "{V}"
    }
  }
}
""",
        "t13_sri",
        False,
    ),
    (
        "web/src/authConfig.ts",
        """export const msalConfig = {
  auth: {
    clientId: '{V}',
    authority: 'https://login.microsoftonline.com/{V2}',
    redirectUri: window.location.origin,
  },
};
""",
        "t13_uuid",
        False,
    ),
    (
        "cloud-init/ssh.yaml",
        """#cloud-config
users:
  - name: ops
    sudo: ALL=(ALL) NOPASSWD:ALL
    ssh_authorized_keys:
      - {V}
""",
        "t13_ssh_pub",
        False,
    ),
    (
        "certs/corp-root-ca.crt",
        """{V}
""",
        "t13_cert",
        False,
    ),
    (
        "deploy/tls/server.key.enc.pem",
        """{V}
""",
        "t13_enc_key",
        False,
    ),
    (
        "src/main/resources/application-staging.properties",
        """jasypt.encryptor.password=${JASYPT_ENCRYPTOR_PASSWORD}
spring.datasource.password={V}
spring.mail.password={V2}
""",
        "t13_jasypt",
        False,
    ),
    (
        "k8s/prod/sealed-db.yaml",
        """apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: db
  namespace: prod
spec:
  encryptedData:
    password: {V}
""",
        "t13_sealed",
        False,
    ),
    (
        "secrets/prod.enc.yaml",
        """db:
    password: {V}
smtp:
    password: {V2}
sops:
    version: 3.8.1
""",
        "t13_sops",
        False,
    ),
    (
        "config/credentials/production.yml.enc",
        """{V}""",
        "t13_rails_enc",
        False,
    ),
    (
        "src/main/java/com/shop/PasswordPolicy.java",
        """package com.shop;

import java.util.List;

final class PasswordPolicy {
    /** Rejected outright: the walks people type first. */
    static final List<String> BLOCKED = List.of(
            "{V}",
            "{V2}",
            "{V3}");
}
""",
        "t13_walk_pass",
        False,
    ),
    (
        "tests/test_password_strength.py",
        """import pytest

from accounts.validators import is_strong


@pytest.mark.parametrize(
    "candidate",
    [
        "{V}",
        "{V2}",
    ],
)
def test_season_plus_year_is_rejected(candidate):
    assert not is_strong(candidate)
""",
        "t13_season_pass",
        False,
    ),
    (
        "web/src/pages/Register.jsx",
        """export default function Register() {
  return (
    <form>
      <label htmlFor="pw">{t('password')}</label>
      <input id="pw" type="password" aria-describedby="pw-help" />
      <small id="pw-help">{V}</small>
    </form>
  );
}
""",
        "t13_validation_msg",
        False,
    ),
    (
        "docs/api/openapi.yaml",
        """components:
  schemas:
    LoginRequest:
      type: object
      required: [username, password]
      properties:
        username: {type: string, example: jdoe}
        password: {type: string, format: password, example: "{V}"}
""",
        "t13_placeholder",
        False,
    ),
    (
        "Makefile.deploy",
        """DB_PASS ?= {V}

migrate:
\tDATABASE_URL=postgres://app:$(DB_PASS)@db:5432/app alembic upgrade head
""",
        "t13_make_ref",
        False,
    ),
    (
        "Vagrantfile",
        """Vagrant.configure("2") do |config|
  config.vm.box = "generic/debian12"
  config.vm.provision "shell", path: "scripts/provision.sh",
    env: { "DB_ROOT_PASSWORD" => {V} }
end
""",
        "t13_ruby_ref",
        False,
    ),
    (
        "scripts/run-db.sh",
        """#!/bin/sh
docker run -d --name db \\
  -e POSTGRES_PASSWORD="{V}" \\
  -p 5432:5432 postgres:16
""",
        "t13_shell_ref",
        False,
    ),
    (
        "stack.yml",
        """services:
  db:
    image: mysql:8
    environment:
      MYSQL_ROOT_PASSWORD_FILE: {V}
    secrets: [db_root_password]
secrets:
  db_root_password:
    external: true
""",
        "t13_secret_file",
        False,
    ),
    (
        ".env.example",
        """APP_NAME=Larkspur
APP_ENV=production
APP_KEY={V}
APP_DEBUG=false
""",
        "t13_empty",
        False,
    ),
    (
        "config/settings.example.py",
        """# Copy to settings_local.py and fill in.
SECRET_KEY = "{V}"
DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "PASSWORD": "{V2}"}}
""",
        "t13_placeholder",
        False,
    ),
    (
        "Identity/SeedData.cs",
        """var admin = new ApplicationUser
{
    UserName = "admin@clinic.local",
    Email = "admin@clinic.local",
    EmailConfirmed = true,
    PasswordHash = "{V}",
    SecurityStamp = Guid.NewGuid().ToString(),
};
""",
        "t13_aspnet_hash",
        False,
    ),
    (
        "docs/wiki/Staging.md",
        """# Staging

The shared staging admin account is kept in 1Password under **{V}**.
Do not paste it into Slack; request access in #ops-access.
""",
        "t13_vault_item",
        False,
    ),
    (
        "docs/api/examples.yml",
        """login:
  request:
    username: {V}
    password: {V2}
""",
        "t13_role_word",
        False,
    ),
    (
        "src/Data/ConnectionFactory.cs",
        """public static class ConnectionFactory
{
    private const string Template =
        "Server=db;Database=Clinic;User Id=clinic;Password={V};";

    public static string Build(string password) => string.Format(Template, password);
}
""",
        "t13_format_ph",
        False,
    ),
    (
        "src/main/resources/jdbc.properties",
        """jdbc.driverClassName=org.postgresql.Driver
jdbc.url=jdbc:postgresql://@db.host@:5432/moodle
jdbc.username=@db.user@
jdbc.password={V}
""",
        "t13_maven_filter",
        False,
    ),
    (
        "db/bootstrap.sql",
        """-- run with: psql -v admin_password="$ADMIN_PASSWORD" -f bootstrap.sql
CREATE EXTENSION IF NOT EXISTS pgcrypto;
UPDATE users SET password = crypt({V}, gen_salt('bf')) WHERE email = 'admin@bookings.local';
""",
        "t13_psql_var",
        False,
    ),
    (
        "internal/auth/login_test.go",
        """package auth

import "testing"

func TestLoginRejectsEmptyPassword(t *testing.T) {
\t_, err := Login("admin", "{V}")
\tif err != ErrPasswordRequired {
\t\tt.Fatalf("want ErrPasswordRequired, got %v", err)
\t}
}
""",
        "t13_empty",
        False,
    ),
    (
        "ansible/roles/db/defaults/main.yml",
        """---
# Override in the inventory's vault; the role refuses to run with this value.
postgres_admin_password: "{V}"
postgres_port: 5432
""",
        "t13_placeholder",
        False,
    ),
    (
        "src/i18n/de.json",
        """{
  "auth": {
    "password": "{V}",
    "passwordHint": "Mindestens 12 Zeichen",
    "submit": "Anmelden"
  }
}
""",
        "t13_ui_text",
        False,
    ),
    (
        "docs/admin-guide.md",
        """### Resetting a user's password

1. Open **Users**, pick the user and choose *Reset password*.
2. The new password is shown once as `{V}` in the audit log; the user gets a mail link.
""",
        "t13_masked",
        False,
    ),
    (
        "tools/make-env.sh",
        """#!/bin/sh
cat > .env <<EOF
DB_PASSWORD={V}
SESSION_SECRET=$(openssl rand -hex 32)
EOF
""",
        "t13_shell_ref",
        False,
    ),
    (
        "docs/runbooks/rabbitmq.md",
        """## Management API

    curl -u "{V}" https://rabbit.internal/api/overview

Use your own LDAP account; the built-in guest user is disabled on every broker.
""",
        "t13_role_pair",
        False,
    ),
    (
        "k8s/base/deployment.yaml",
        """      containers:
        - name: app
          image: ghcr.io/corp/clinic:1.9.0
          env:
            - name: DB_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: clinic-db
                  key: {V}
""",
        "t13_secret_key_name",
        False,
    ),
    (
        "CHANGELOG.md",
        """## 3.2.0

- Login now returns `{V}` after five failed attempts (was a generic 401).
- Password reset links expire after 30 minutes.
""",
        "t13_error_code",
        False,
    ),
    (
        "scripts/check_reuse.py",
        """from hashlib import sha256

KNOWN_BREACHED_SHA256 = {
    "{V}",
}
""",
        "t13_hex64",
        False,
    ),
    (
        "docs/smtp.md",
        """## Sending through Gmail

Create an app password under *Google Account > Security > App passwords*
and put it in `.env` as `MAIL_PASSWORD={V}` (16 letters, no spaces).
""",
        "t13_placeholder",
        False,
    ),
]
