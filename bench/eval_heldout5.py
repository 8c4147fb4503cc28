"""The fifth held-out part of the evaluation corpus: written blind (without reading the scanner,
its rules, its tests or the other parts' templates) and never tuned on.

About 150 templates in the shapes of real repositories: mobile, data, configuration
management, observability, proxies, databases' own config files, messaging, payment and SaaS
SDK set-up, IaC, many CI systems, mail, prose. Label rule: positive = a concrete value that
would grant access if live (weak test passwords included); negative = anything else
(placeholders, references to a secret store, hashes, ids, public keys and certificates,
encrypted keys, UI text, credentials on documentation hosts, checksums, versions, images).
Every ``{V}`` slot is one labelled value (see ``evalset._render_slots``); values come from
``Heldout5Values`` with its own words, service users and seed (5519).
"""

from __future__ import annotations

import base64
import json
import string
import urllib.parse

import evalset
from evalset import ALNUM, Template

HEX = "0123456789abcdef"
URLSAFE = ALNUM + "_-"
MULTI_SLOT = True


class Heldout5Values(evalset.Values):
    """Value generators of the fifth held-out part: its own dictionary words and service users,
    and ``h5_`` generators for shapes and formats the base class lacks."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "cormorant",
            "tamarind",
            "zeppelin",
            "marzipan",
            "obsidian",
            "wombat",
            "sequoia",
            "nutmeg",
            "lilac",
            "fjord",
        ]
        self.users = [
            "telemetry",
            "fulfilment",
            "warehouse",
            "dispatch",
            "auditlog",
            "loyalty",
            "catalog",
            "webhooks",
        ]

    # -- helpers (not slot kinds) -------------------------------------------------------------
    def h5_host(self) -> str:
        user = self.pick(self.users)
        return self.pick(
            [
                f"{user}-db.prod.internal",
                f"10.{self.rng.randrange(1, 250)}.{self.rng.randrange(0, 250)}.{self.rng.randrange(2, 250)}",
                f"{user}.svc.cluster.local",
                f"{user}-primary.c7xq2k.eu-central-1.rds.amazonaws.com",
                f"{user}.corp.lan",
            ]
        )

    def h5_doc_host(self) -> str:
        return self.pick(
            ["db.example.com", "broker.example.net", "mq.example.org", "cache.test",
             "pg.invalid", "smtp.example", "localhost.example"]
        )  # fmt: skip

    def h5_b64(self, n: int) -> str:
        return base64.b64encode(self.rng.randbytes(n)).decode()

    # -- positives: passwords ------------------------------------------------------------------
    def h5_weak(self) -> str:
        return self.pick(self.words) + self.pick(["", "1", "123", "2024", "!", "99"])

    def h5_password(self) -> str:
        shape = self.rng.randrange(4)
        # The first character is always alphanumeric: YAML, shells and INI files treat a leading
        # ``#``, ``*``, ``&``, ``%`` or ``!`` specially.
        if shape == 0:
            word = self.pick(self.words).capitalize()
            return word + str(self.rng.randrange(10, 2030)) + self.pick(["!", "@", "$", "%"])
        if shape == 1:
            return self.pick(self.words).capitalize() + "_" + self.s(5, string.digits) + "#"
        if shape == 2:
            return self.s(1) + self.s(self.rng.randrange(13, 23), ALNUM + "!%^*-_.")
        return self.s(20)

    def h5_url_password(self) -> str:
        return self.pick(self.words).capitalize() + self.s(6, ALNUM)

    # -- positives: connection strings and URIs ------------------------------------------------
    def h5_pg_uri(self) -> str:
        user = self.pick(self.users)
        return f"postgresql://{user}:{self.h5_url_password()}@{self.h5_host()}:5432/{user}"

    def h5_mongo_uri(self) -> str:
        user = self.pick(self.users)
        return (
            f"mongodb+srv://{user}:{self.h5_url_password()}@cluster0.{self.s(5, string.ascii_lowercase + string.digits)}"
            f".mongodb.net/{user}?retryWrites=true&w=majority"
        )

    def h5_nats_uri(self) -> str:
        return f"nats://{self.pick(self.users)}:{self.h5_weak()}@localhost:4222"

    def h5_jdbc(self) -> str:
        user = self.pick(self.users)
        return (
            f"jdbc:postgresql://{self.h5_host()}:5432/{user}?user={user}"
            f"&password={self.h5_url_password()}&ssl=true"
        )

    def h5_mssql_cs(self) -> str:
        user = self.pick(self.users)
        return (
            f"Server=tcp:{user}-sql.database.windows.net,1433;Initial Catalog={user};"
            f"User ID={user}_app;Password={self.h5_url_password()};Encrypt=True;"
        )

    def h5_azure_storage_cs(self) -> str:
        acct = self.pick(self.users) + self.s(4, string.digits)
        return (
            f"DefaultEndpointsProtocol=https;AccountName={acct};"
            f"AccountKey={self.h5_b64(64)};EndpointSuffix=core.windows.net"
        )

    def h5_sas_url(self) -> str:
        sig = urllib.parse.quote(self.h5_b64(32), safe="")
        return (
            f"https://{self.pick(self.users)}store.blob.core.windows.net/exports?sv=2022-11-02"
            f"&ss=b&srt=co&sp=rwl&se=2027-03-01T00:00:00Z&spr=https&sig={sig}"
        )

    def h5_smtp_uri(self) -> str:
        return f"smtp://{self.pick(self.users)}%40mail.corp.lan:{self.h5_url_password()}@smtp.corp.lan:587"

    # -- positives: SaaS and platform token formats --------------------------------------------
    def h5_dockerhub(self) -> str:
        return "dckr_pat_" + self.s(27, URLSAFE)

    def h5_gitlab_runner(self) -> str:
        return "glrt-" + self.s(20, URLSAFE)

    def h5_gitlab_deploy(self) -> str:
        return "gldt-" + self.s(20, URLSAFE)

    def h5_linear(self) -> str:
        return "lin_api_" + self.s(40)

    def h5_pulumi(self) -> str:
        return "pul-" + self.s(40, HEX)

    def h5_rubygems(self) -> str:
        return "rubygems_" + self.s(48, HEX)

    def h5_supabase(self) -> str:
        return "sbp_" + self.s(40, HEX)

    def h5_airtable(self) -> str:
        return f"pat{self.s(14)}.{self.s(64, HEX)}"

    def h5_brevo(self) -> str:
        return f"xkeysib-{self.s(64, HEX)}-{self.s(16)}"

    def h5_shippo(self) -> str:
        return "shippo_live_" + self.s(40, HEX)

    def h5_flutterwave(self) -> str:
        return "FLWSECK-" + self.s(32, HEX) + "-X"

    def h5_tailscale(self) -> str:
        return f"tskey-auth-k{self.s(11)}CNTRL-{self.s(33)}"

    def h5_discord_bot(self) -> str:
        ident = (
            base64.b64encode(str(self.rng.randrange(10**17, 10**18)).encode()).decode().rstrip("=")
        )
        return f"{ident}.{self.s(6, URLSAFE)}.{self.s(38, URLSAFE)}"

    def h5_okta(self) -> str:
        return "00" + self.s(40, URLSAFE)

    def h5_contentful(self) -> str:
        return "CFPAT-" + self.s(43, URLSAFE)

    def h5_grafana_cloud(self) -> str:
        body = json.dumps(
            {"o": str(self.rng.randrange(10**5, 10**6)), "n": f"{self.pick(self.users)}-push",
             "k": self.s(24), "m": {"r": "prod-eu-west-2"}},
            separators=(",", ":"),
        )  # fmt: skip
        return "glc_" + base64.b64encode(body.encode()).decode()

    def h5_fcm_server_key(self) -> str:
        return f"AAAA{self.s(7, URLSAFE)}:APA91b{self.s(134, URLSAFE)}"

    def h5_clojars(self) -> str:
        return "CLOJARS_" + self.s(60, HEX)

    def h5_sonar(self) -> str:
        return self.pick(["squ_", "sqp_", "sqa_"]) + self.s(40, HEX)

    def h5_circleci(self) -> str:
        return f"CCIPAT_{self.s(22)}_{self.s(40, HEX)}"

    def h5_buildkite(self) -> str:
        return "bkua_" + self.s(40, HEX)

    def h5_revenuecat(self) -> str:
        return "sk_" + self.s(32)

    def h5_laravel_key(self) -> str:
        return "base64:" + self.h5_b64(32)

    def h5_fernet(self) -> str:
        return base64.urlsafe_b64encode(self.rng.randbytes(32)).decode()

    def h5_secret_key_base(self) -> str:
        return self.s(64, ALNUM + "+/")

    def h5_any_key(self) -> str:
        return self.pick([self.openssh_key(), self.pkcs8_key(), self.ec_key(), self.pem()])

    # -- negatives ------------------------------------------------------------------------------
    def h5_placeholder(self) -> str:
        return self.pick(
            [
                "<your-db-password>",
                "<CLIENT_SECRET>",
                "${KAFKA_SASL_PASSWORD}",
                "${env:GRAFANA_ADMIN_PASSWORD}",
                "{{ redis_password }}",
                "{{ .Values.smtp.password }}",
                "###SMTP_PASSWORD###",
                "###PAYMENT_API_KEY###",
                "changeme",
                "change-me-in-production",
                "xxxxxxxxxxxxxxxxxxxxxxxx",
                "************************",
                "XXXXXXXXXXXXXXXX",
            ]
        )

    def h5_doc_placeholder(self) -> str:
        return self.pick(
            [
                "<paste-your-token-here>",
                "YOUR_SECRET_KEY",
                "<YOUR_API_KEY>",
                "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx",
                "lin_api_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "dckr_pat_<token>",
                "${API_TOKEN}",
                "{{API_TOKEN}}",
                "<token>",
            ]
        )

    def h5_py_ref(self) -> str:
        return self.pick(
            [
                'os.environ["SMTP_PASSWORD"]',
                'os.getenv("STRIPE_SECRET_KEY", "")',
                'Variable.get("warehouse_password")',
                'settings.get("db.password")',
                'keyring.get_password("dispatch", "api")',
            ]
        )

    def h5_go_ref(self) -> str:
        return self.pick(
            ['os.Getenv("NATS_PASSWORD")', "cfg.Broker.Password", 'mustEnv("API_TOKEN")']
        )

    def h5_jvm_ref(self) -> str:
        return self.pick(
            [
                'System.getenv("SONATYPE_PASSWORD")',
                'project.findProperty("signingPassword")',
                'props.getProperty("db.password")',
                'System.getProperty("kafka.password")',
            ]
        )

    def h5_cs_ref(self) -> str:
        return self.pick(
            [
                'Environment.GetEnvironmentVariable("SMTP_PASSWORD")',
                'Configuration["Payments:ApiKey"]',
                "_options.Value.ClientSecret",
            ]
        )

    def h5_rb_ref(self) -> str:
        return self.pick(
            [
                "ENV.fetch('SMTP_PASSWORD')",
                "Rails.application.credentials.dig(:stripe, :secret_key)",
                "ENV['API_TOKEN']",
            ]
        )

    def h5_rust_ref(self) -> str:
        return self.pick(
            [
                'std::env::var("DATABASE_PASSWORD")?',
                'env!("API_TOKEN")',
                'dotenvy::var("SECRET")?',
            ]
        )

    def h5_php_ref(self) -> str:
        return self.pick(["getenv('MAIL_PASSWORD')", "$_SERVER['API_KEY']", "env('STRIPE_SECRET')"])

    def h5_shell_ref(self) -> str:
        return self.pick(
            ['"$DB_PASSWORD"', '"${REGISTRY_TOKEN}"', '"$(vault kv get -field=password secret/db)"',
             '"$(cat /run/secrets/api_token)"', '"$(pass show ci/npm)"']
        )  # fmt: skip

    def h5_ci_ref(self) -> str:
        return self.pick(
            ["${{ secrets.DEPLOY_KEY }}", "$CI_REGISTRY_PASSWORD", "$(REGISTRY_PASSWORD)",
             "%env.REGISTRY_TOKEN%", "${REGISTRY_TOKEN}", "$BUILDKITE_SECRET_TOKEN",
             "${DRONE_SECRET}", "$DOCKER_PASS"]
        )  # fmt: skip

    def h5_store_ref(self) -> str:
        return self.pick(
            [
                "vault:secret/data/warehouse#password",
                "op://Ops/Kafka/password",
                "arn:aws:ssm:eu-west-1:123456789012:parameter/prod/kafka/password",
                "projects/acme-prod/secrets/db-password/versions/latest",
                "azurekeyvault://kv-dispatch/secrets/smtp-password",
                "sm://prod/payments/api-key",
            ]
        )

    def h5_doc_uri(self) -> str:
        scheme = self.pick(["postgres", "mysql", "amqp", "redis", "mongodb", "smtp"])
        return (
            f"{scheme}://{self.pick(self.users)}:{self.h5_url_password()}@{self.h5_doc_host()}/app"
        )

    def h5_aws_doc(self) -> str:
        return self.pick(
            [
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "AKIAI44QH8DHBEXAMPLE",
                "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
            ]
        )

    def h5_i18n(self) -> str:
        return self.pick(
            [
                "Salasana on liian lyhyt",
                "Jelszó megerősítése",
                "Heslo je příliš krátké",
                "Kata sandi salah",
                "Nenosiri si sahihi",
                "Parola este greșită",
                "Գաղտնաբառը սխալ է",
                "პაროლი არასწორია",
                "পাসওয়ার্ড ভুল",
                "கடவுச்சொல் தவறானது",
                "Adgangskoden er forkert",
                "Mật khẩu đã hết hạn",
            ]
        )

    def h5_prose(self) -> str:
        return self.pick(
            [
                "must be at least 12 characters long",
                "is rotated every 90 days by the platform team",
                "lives in Vault under secret/warehouse",
                "is never stored in this repository",
                "was revoked on 2024-03-02",
            ]
        )

    def h5_hash(self) -> str:
        return self.rng.choice(
            [self.bcrypt, self.argon2, self.sha512crypt, self.pbkdf2_django, self.apr1]
        )()

    def h5_digest(self) -> str:
        return self.pick([self.digest(), "sha256:" + self.hex64(), self.git_sha(), self.sri()])

    def h5_image_digest(self) -> str:
        return "sha256:" + self.hex64()

    def h5_trace_id(self) -> str:
        return self.pick(
            [self.request_id(), f"00-{self.hex32()}-{self.s(16, HEX)}-01", self.s(16, HEX)]
        )

    def h5_version(self) -> str:
        return self.pick(["4.2.1", "v1.29.3", "2.0.0-beta.3", "2024.1.5", "17.0.9+9", "1.75.0"])

    def h5_public(self) -> str:
        return self.rng.choice([self.public_pem, self.certificate, self.pgp_public])()

    def h5_encrypted(self) -> str:
        return self.rng.choice([self.encrypted_key, self.legacy_encrypted_key])()

    def h5_cipher_text(self) -> str:
        return self.rng.choice([self.sops_value, self.tune6_jenkins_secret, self.sealed])()

    def h5_masked(self) -> str:
        return self.pick(
            [
                "sk_live_****************4f2a",
                "ghp_************************************",
                "AKIA************",
                "••••••••",
                "dckr_pat_***",
                "[FILTERED]",
                "<REDACTED>",
            ]
        )

    def h5_font_b64(self) -> str:
        return base64.b64encode(b"wOF2\x00\x01\x00\x00" + self.rng.randbytes(180)).decode()

    def h5_public_id(self) -> str:
        return self.pick(
            [self.stripe_pk(), self.google_client_id(), "pk." + self.jwk_d(), self.request_id()]
        )

    def h5_csp_nonce(self) -> str:
        return self.csp_nonce()

    def h5_swift_ref(self) -> str:
        return self.pick(
            [
                'ProcessInfo.processInfo.environment["API_KEY"] ?? ""',
                'Bundle.main.object(forInfoDictionaryKey: "API_KEY") as? String',
                'try Keychain.shared.get("apiKey")',
            ]
        )

    def h5_dart_ref(self) -> str:
        return self.pick(
            [
                "const String.fromEnvironment('API_KEY')",
                "dotenv.env['API_KEY']!",
                "await storage.read(key: 'api_key')",
            ]
        )

    def h5_scala_ref(self) -> str:
        return self.pick(
            [
                'sys.env("DB_PASSWORD")',
                'config.getString("db.password")',
                'sys.props("db.password")',
            ]
        )

    def h5_perl_ref(self) -> str:
        return self.pick(
            ["$ENV{'DEPLOY_TOKEN'}", "$ENV{DEPLOY_TOKEN} // die", "$config->{api_token}"]
        )

    def h5_groovy_ref(self) -> str:
        return self.pick(
            ["env.NEXUS_PASSWORD", "params.DEPLOY_PASSWORD", "credentials('nexus-deploy')"]
        )


#: (path, text with ``{V}``/``{V2}``/``{IV}`` slots, value generator, is a credential).
TEMPLATES: list[Template] = [
    # == credentials ===========================================================================
    # -- mobile: Android, iOS, Flutter ----------------------------------------------------------
    (
        "android/gradle.properties",
        "org.gradle.jvmargs=-Xmx4g\nandroid.useAndroidX=true\nRELEASE_STORE_FILE=release.jks\n"
        "RELEASE_STORE_PASSWORD={V}\nRELEASE_KEY_ALIAS=upload\nRELEASE_KEY_PASSWORD={V2}\n",
        "h5_password",
        True,
    ),
    (
        "ios/Runner/Secrets.plist",
        '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN"'
        ' "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n<plist version="1.0">\n<dict>\n'
        "\t<key>RevenueCatSecretKey</key>\n\t<string>{V}</string>\n</dict>\n</plist>\n",
        "h5_revenuecat",
        True,
    ),
    (
        "ios/Sources/Payments/StripeConfig.swift",
        "import StripeCore\n\nenum StripeConfig {\n"
        '    // server-side key, moved here while debugging checkout\n    static let secretKey = "{V}"\n}\n',
        "stripe",
        True,
    ),
    (
        "lib/src/api/client.dart",
        "import 'package:dio/dio.dart';\n\nfinal dio = Dio(BaseOptions(\n"
        "  baseUrl: 'https://api.linear.app/graphql',\n  headers: {'Authorization': '{V}'},\n));\n",
        "h5_linear",
        True,
    ),
    (
        "android/app/google-services-legacy.txt",
        "# FCM legacy HTTP API, used by the notifications worker\nserver_key={V}\n",
        "h5_fcm_server_key",
        True,
    ),
    # -- data: Airflow, dbt, Spark, notebooks ---------------------------------------------------
    (
        "airflow/.env",
        "AIRFLOW__CORE__FERNET_KEY={V}\nAIRFLOW__WEBSERVER__SECRET_KEY={V2}\n"
        "AIRFLOW__CORE__EXECUTOR=CeleryExecutor\n",
        "h5_fernet",
        True,
    ),
    (
        "analytics/profiles.yml",
        "analytics:\n  target: prod\n  outputs:\n    prod:\n      type: snowflake\n"
        "      account: xy12345.eu-west-1\n      user: DBT_TRANSFORMER\n      password: {V}\n"
        "      role: TRANSFORMER\n      warehouse: TRANSFORMING\n",
        "h5_password",
        True,
    ),
    (
        "conf/spark-defaults.conf",
        "spark.hadoop.fs.s3a.impl org.apache.hadoop.fs.s3a.S3AFileSystem\n"
        "spark.hadoop.fs.s3a.access.key {V}\n",
        "aws_id",
        True,
    ),
    (
        "notebooks/explore_sales.ipynb",
        '{\n "cells": [\n  {\n   "cell_type": "code",\n   "execution_count": 3,\n   "metadata": {},\n'
        '   "outputs": [],\n   "source": [\n    "import snowflake.connector\\n",\n'
        '    "conn = snowflake.connector.connect(user=\\"analyst\\", password=\\"{V}\\", account=\\"xy12345\\")\\n"\n'
        '   ]\n  }\n ],\n "metadata": {},\n "nbformat": 4,\n "nbformat_minor": 5\n}\n',
        "h5_password",
        True,
    ),
    # -- configuration management: Salt, Chef, Puppet, Ansible ----------------------------------
    (
        "salt/pillar/mysql.sls",
        "mysql:\n  server:\n    root_password: {V}\n  users:\n    dispatch:\n      password: {V2}\n"
        "      host: '%'\n",
        "h5_password",
        True,
    ),
    (
        "chef/data_bags/credentials/smtp.json",
        '{\n  "id": "smtp",\n  "host": "smtp.corp.lan",\n  "user": "noreply",\n  "password": "{V}"\n}\n',
        "h5_password",
        True,
    ),
    (
        "puppet/hieradata/common.yaml",
        "---\nprofile::rabbitmq::admin_user: ops\nprofile::rabbitmq::admin_password: '{V}'\n"
        "profile::rabbitmq::vhost: /\n",
        "h5_password",
        True,
    ),
    (
        "ansible/inventories/prod/group_vars/dbservers.yml",
        "postgresql_version: 15\npostgresql_users:\n  - name: loyalty\n    password: {V}\n"
        "    db: loyalty\n",
        "h5_password",
        True,
    ),
    (
        "ansible/inventories/staging/hosts.ini",
        "[web]\nweb1.stg.corp.lan ansible_user=deploy ansible_password={V} ansible_become_pass={V2}\n",
        "h5_password",
        True,
    ),
    # -- observability ------------------------------------------------------------------------
    (
        "grafana/grafana.ini",
        "[server]\nhttp_port = 3000\n\n[security]\nadmin_user = admin\nadmin_password = {V}\n"
        "secret_key = {V2}\n",
        "h5_password",
        True,
    ),
    (
        "prometheus/prometheus.yml",
        "scrape_configs:\n  - job_name: node\n    basic_auth:\n      username: scraper\n"
        "      password: {V}\n    static_configs:\n      - targets: ['10.4.0.11:9100']\n",
        "h5_password",
        True,
    ),
    (
        "alertmanager/alertmanager.yml",
        "route:\n  receiver: slack-ops\nreceivers:\n  - name: slack-ops\n    slack_configs:\n"
        "      - api_url: {V}\n        channel: '#ops-alerts'\n",
        "slack_webhook",
        True,
    ),
    (
        "alloy/config.alloy",
        'prometheus.remote_write "cloud" {\n  endpoint {\n'
        '    url = "https://prometheus-prod-24-prod-eu-west-2.grafana.net/api/prom/push"\n'
        '    basic_auth {\n      username = "1234567"\n      password = "{V}"\n    }\n  }\n}\n',
        "h5_grafana_cloud",
        True,
    ),
    # -- web servers and proxies ----------------------------------------------------------------
    (
        "nginx/conf.d/upstream.conf",
        "location /internal/ {\n    proxy_pass http://warehouse:8080;\n"
        '    proxy_set_header Authorization "Basic {V}";\n}\n',
        "basic",
        True,
    ),
    (
        "haproxy/haproxy.cfg",
        "userlist stats_users\n    user admin insecure-password {V}\n\nlisten stats\n"
        "    bind :8404\n    stats enable\n    stats auth ops:{V2}\n",
        "h5_password",
        True,
    ),
    (
        "traefik/dynamic.yml",
        "http:\n  middlewares:\n    upstream-auth:\n      headers:\n        customRequestHeaders:\n"
        '          X-Api-Key: "{V}"\n',
        "api_key",
        True,
    ),
    # -- databases' own config files -----------------------------------------------------------
    (
        "docker/mysql/my.cnf",
        "[client]\nuser=root\npassword={V}\nhost=127.0.0.1\n\n[mysqld]\nbind-address=0.0.0.0\n",
        "h5_password",
        True,
    ),
    (
        "redis/redis.conf",
        "bind 0.0.0.0\nport 6379\nrequirepass {V}\nmasterauth {V}\nappendonly yes\n",
        "h5_password",
        True,
    ),
    (
        "home/.pgpass",
        "warehouse-db.prod.internal:5432:analytics:etl_loader:{V}\n",
        "h5_password",
        True,
    ),
    # -- messaging --------------------------------------------------------------------------------
    (
        "kafka/client-jaas.conf",
        "KafkaClient {\n  org.apache.kafka.common.security.scram.ScramLoginModule required\n"
        '  username="fulfilment"\n  password="{V}";\n};\n',
        "h5_password",
        True,
    ),
    (
        "rabbitmq/definitions.json",
        '{\n  "users": [\n    {"name": "dispatch", "password": "{V}", "tags": "management"}\n  ],\n'
        '  "vhosts": [{"name": "/"}]\n}\n',
        "h5_password",
        True,
    ),
    (
        "nats/server.conf",
        "authorization {\n  users = [\n    {user: webhooks, password: {V}}\n  ]\n}\n",
        "h5_weak",
        True,
    ),
    (
        "nats/creds/dispatch.nk",
        "{V}\n",
        "nkey",
        True,
    ),
    (
        "deploy/nats/operator.yaml",
        "operator:\n  name: acme\n  system_account_seed: {V}\n",
        "nats_account_seed",
        True,
    ),
    (
        "worker/consumer_test.go",
        'package worker\n\nimport "testing"\n\nfunc TestConsume(t *testing.T) {\n'
        '\tnc := connect(t, "{V}")\n\tdefer nc.Close()\n}\n',
        "h5_nats_uri",
        True,
    ),
    # -- payment and SaaS SDK set-up ------------------------------------------------------------
    (
        "src/Checkout/FlutterwaveClient.cs",
        "namespace Checkout;\n\npublic sealed class FlutterwaveClient\n{\n"
        '    private const string SecretKey = "{V}";\n}\n',
        "h5_flutterwave",
        True,
    ),
    (
        "lib/mailer/brevo.ex",
        'defmodule Mailer.Brevo do\n  @api_key "{V}"\n\n  def headers, do: [{"api-key", @api_key}]\nend\n',
        "h5_brevo",
        True,
    ),
    (
        "src/main/scala/cms/Contentful.scala",
        'package cms\n\nobject Contentful {\n  val managementToken = "{V}"\n  val spaceId = "k8x2m1"\n}\n',
        "h5_contentful",
        True,
    ),
    (
        "scripts/airtable_export.pl",
        "use strict;\nuse LWP::UserAgent;\n\nmy $ua = LWP::UserAgent->new;\n"
        "$ua->default_header('Authorization' => 'Bearer {V}');\n",
        "h5_airtable",
        True,
    ),
    (
        "bot/main.go",
        'package main\n\nimport "github.com/bwmarrin/discordgo"\n\nfunc main() {\n'
        '\tdg, _ := discordgo.New("Bot {V}")\n\t_ = dg.Open()\n}\n',
        "h5_discord_bot",
        True,
    ),
    (
        "src/main/java/com/acme/okta/OktaAdmin.java",
        "package com.acme.okta;\n\npublic class OktaAdmin {\n"
        '    private static final String API_TOKEN = "{V}";\n}\n',
        "h5_okta",
        True,
    ),
    # -- IaC: Terraform, Pulumi, CDK, Bicep, CloudFormation ------------------------------------
    (
        "infra/main.tf",
        'provider "datadog" {\n  api_key = "{V}"\n  app_key = "{V2}"\n}\n',
        "hex32",
        True,
    ),
    (
        "infra/Pulumi.prod.yaml",
        "config:\n  aws:region: eu-west-1\n  dispatch:dbPassword: {V}\n",
        "h5_password",
        True,
    ),
    (
        "cdk/lib/queue-stack.ts",
        "new rds.DatabaseInstance(this, 'Db', {\n  engine,\n  vpc,\n"
        "  credentials: rds.Credentials.fromPassword('catalog', SecretValue.unsafePlainText('{V}')),\n});\n",
        "h5_password",
        True,
    ),
    (
        "bicep/main.bicep",
        "param location string = resourceGroup().location\n\n"
        "resource sql 'Microsoft.Sql/servers@2022-05-01-preview' = {\n  name: 'sql-loyalty'\n"
        "  location: location\n  properties: {\n    administratorLogin: 'sqladmin'\n"
        "    administratorLoginPassword: '{V}'\n  }\n}\n",
        "h5_password",
        True,
    ),
    (
        "cloudformation/app.yaml",
        "Resources:\n  AppFunction:\n    Type: AWS::Lambda::Function\n    Properties:\n"
        "      Environment:\n        Variables:\n          SENDGRID_API_KEY: {V}\n",
        "sendgrid",
        True,
    ),
    # -- CI systems -----------------------------------------------------------------------------
    (
        ".drone.yml",
        "kind: pipeline\nname: default\nsteps:\n  - name: publish\n    image: plugins/docker\n"
        "    settings:\n      repo: acme/dispatch\n      username: acmebot\n      password: {V}\n",
        "h5_dockerhub",
        True,
    ),
    (
        ".buildkite/pipeline.yml",
        "env:\n  BUILDKITE_API_TOKEN: {V}\nsteps:\n  - command: make release\n",
        "h5_buildkite",
        True,
    ),
    (
        ".teamcity/settings.kts",
        'project {\n    params {\n        password("env.SONAR_TOKEN", "{V}", display = ParameterDisplay.HIDDEN)\n'
        "    }\n}\n",
        "h5_sonar",
        True,
    ),
    (
        ".travis.yml",
        "language: ruby\ndeploy:\n  provider: rubygems\n  api_key: {V}\n  on:\n    tags: true\n",
        "h5_rubygems",
        True,
    ),
    (
        ".circleci/config.yml",
        "version: 2.1\njobs:\n  build:\n    docker:\n      - image: cimg/node:20.11\n"
        "    environment:\n      CIRCLE_TOKEN: {V}\n    steps:\n      - checkout\n",
        "h5_circleci",
        True,
    ),
    (
        "Jenkinsfile",
        "pipeline {\n  agent any\n  stages {\n    stage('Deploy') {\n      steps {\n"
        "        sh 'curl -fsS -u deployer:{V} https://nexus.corp.lan/repository/releases/ -T build.zip'\n"
        "      }\n    }\n  }\n}\n",
        "h5_password",
        True,
    ),
    (
        "azure-pipelines.yml",
        "variables:\n  registryPassword: '{V}'\nsteps:\n  - script: docker login acmecr.azurecr.io -u acmecr -p $(registryPassword)\n",
        "azure_key",
        True,
    ),
    (
        "bitbucket-pipelines.yml",
        "pipelines:\n  default:\n    - step:\n        script:\n"
        "          - pipe: atlassian/ssh-run:0.8.0\n            variables:\n"
        "              SSH_USER: deploy\n              PASSWORD: '{V}'\n",
        "h5_password",
        True,
    ),
    (
        ".gitlab-ci.yml",
        "variables:\n  RUNNER_TOKEN: {V}\nregister:\n  script:\n"
        "    - gitlab-runner register --url https://gitlab.corp.lan --token $RUNNER_TOKEN\n",
        "h5_gitlab_runner",
        True,
    ),
    (
        ".github/workflows/publish.yml",
        "jobs:\n  publish:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n"
        "      - run: ./gradlew publish\n        env:\n          CLOJARS_TOKEN: {V}\n",
        "h5_clojars",
        True,
    ),
    # -- mail --------------------------------------------------------------------------------------
    (
        "config/settings/production.py",
        "EMAIL_BACKEND = 'django.core.mail.backends.smtp.EmailBackend'\nEMAIL_HOST = 'smtp.corp.lan'\n"
        "EMAIL_HOST_USER = 'noreply@corp.lan'\nEMAIL_HOST_PASSWORD = '{V}'\n",
        "h5_password",
        True,
    ),
    (
        "config/environments/production.rb",
        "config.action_mailer.smtp_settings = {\n  address: 'smtp.mailgun.org',\n  port: 587,\n"
        "  user_name: 'postmaster@mg.corp.lan',\n  password: '{V}',\n}\n",
        "mailgun",
        True,
    ),
    (
        "services/notify/mailer.js",
        "const nodemailer = require('nodemailer');\n\nmodule.exports = nodemailer.createTransport(\n"
        "  '{V}'\n);\n",
        "h5_smtp_uri",
        True,
    ),
    (
        "appsettings.Production.json",
        '{\n  "Logging": {\n    "LogLevel": {"Default": "Warning"}\n  },\n'
        '  "ConnectionStrings": {\n    "Default": "{V}"\n  }\n}\n',
        "h5_mssql_cs",
        True,
    ),
    # -- Authorization set through calls, curl, cassettes -----------------------------------------
    (
        "internal/warehouse/client.go",
        "func (c *Client) do(req *http.Request) (*http.Response, error) {\n"
        '\treq.Header.Set("Authorization", "Basic {V}")\n\treturn c.http.Do(req)\n}\n',
        "basic",
        True,
    ),
    (
        "tools/backfill.py",
        "import requests\n\nresp = requests.get(\n    'https://api.corp.lan/v2/orders',\n"
        "    headers={'Authorization': f'Bearer {V}'},\n    timeout=30,\n)\n",
        "bearer",
        True,
    ),
    (
        "spec/cassettes/warehouse/list_orders.yml",
        "http_interactions:\n- request:\n    method: get\n    uri: https://api.corp.lan/v2/orders\n"
        "    headers:\n      Authorization:\n      - Bearer {V}\n      Accept:\n      - application/json\n"
        "  response:\n    status:\n      code: 200\n",
        "bearer",
        True,
    ),
    (
        "docs/api/quickstart.md",
        "## List shipments\n\n```sh\ncurl https://api.goshippo.com/shipments/ \\\n"
        '  -H "Authorization: ShippoToken {V}"\n```\n',
        "h5_shippo",
        True,
    ),
    (
        "scripts/register_hook.sh",
        "#!/usr/bin/env bash\nset -euo pipefail\ncurl -sS -u dispatch:{V} \\\n"
        "  -X POST https://jira.corp.lan/rest/webhooks/1.0/webhook \\\n  -d @hook.json\n",
        "h5_password",
        True,
    ),
    (
        "scripts/restore.sh",
        "#!/bin/sh\npg_restore --clean \\\n  --dbname={V} \\\n  dump.pgc\n",
        "h5_pg_uri",
        True,
    ),
    (
        "scripts/rotate.ps1",
        '$headers = @{ Authorization = "Bearer {V}" }\n'
        "Invoke-RestMethod -Uri https://api.corp.lan/rotate -Method Post -Headers $headers\n",
        "bearer",
        True,
    ),
    # -- bare names: key, consumer_key, client_secret, nonce, seed; UUID keys ----------------------
    (
        "config/twitter.yml",
        "production:\n  consumer_key: {V}\n  consumer_secret: {V2}\n",
        "twitter_key",
        True,
    ),
    (
        "config/oauth.toml",
        '[oauth.gitlab]\nclient_id = "catalog-sso"\nclient_secret = "{V}"\n',
        "hex64",
        True,
    ),
    (
        "settings/geo.json",
        '{\n  "provider": "opencage",\n  "key": "{V}"\n}\n',
        "hex32",
        True,
    ),
    (
        "wp-config.php",
        "<?php\ndefine( 'NONCE_KEY',  '{V}' );\ndefine( 'NONCE_SALT', '{V2}' );\n",
        "wp_salt",
        True,
    ),
    (
        "validator/signer.toml",
        '[signer]\nscheme = "ed25519"\nseed = "{V}"\n',
        "hex64",
        True,
    ),
    (
        "config/heroku.yml",
        "heroku:\n  api_key: {V}\n  app: dispatch-prod\n",
        "uuid_key",
        True,
    ),
    # -- KEY=value in Markdown and TOML docs ---------------------------------------------------------
    (
        "README.md",
        "# dispatch\n\nCreate `.env` with:\n\n```\nDATABASE_URL={V}\nPORT=8080\n```\n",
        "h5_pg_uri",
        True,
    ),
    (
        "docs/wiki/Onboarding.md",
        "## Local services\n\nThe shared staging broker account:\n\n"
        "    RABBITMQ_USER=webhooks\n    RABBITMQ_PASS={V}\n",
        "h5_password",
        True,
    ),
    (
        "netlify.toml",
        '[build]\n  command = "npm run build"\n\n[build.environment]\n  NODE_VERSION = "20"\n'
        '  SUPABASE_ACCESS_TOKEN = "{V}"\n',
        "h5_supabase",
        True,
    ),
    (
        ".github/ISSUE_TEMPLATE/bug_report.md",
        "---\nname: Bug report\n---\n\n**Config used**\n\n```toml\n[registry]\n"
        'token = "{V}"\n```\n',
        "crates_io",
        True,
    ),
    (
        "docs/source/deploy.rst",
        "Deploying\n=========\n\nSet the token before running the playbook::\n\n"
        "    export TAILSCALE_AUTHKEY={V}\n",
        "h5_tailscale",
        True,
    ),
    # -- known formats: JWK with d, keys in one file ---------------------------------------------------
    (
        "config/jwks.json",
        '{\n  "keys": [\n    {\n      "kty": "OKP",\n      "crv": "Ed25519",\n      "kid": "dispatch-2024",\n'
        '      "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",\n      "d": "{V}"\n    }\n  ]\n}\n',
        "jwk_d",
        True,
    ),
    (
        "tests/certs/mtls/bundle.pem",
        "{V}\n{V2}\n{V3}\n",
        "h5_any_key",
        True,
    ),
    (
        "deploy/keys/id_ed25519",
        "{V}\n",
        "openssh_key",
        True,
    ),
    (
        "helm/dispatch/values-prod.yaml",
        "tls:\n  enabled: true\n  key: |\n    {IV}\n",
        "pkcs8_key",
        True,
    ),
    (
        "k8s/kubeconfig-ci.yaml",
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://10.0.0.1:6443\n"
        "  name: prod\nusers:\n- name: ci\n  user:\n    token: {V}\n",
        "jwt",
        True,
    ),
    (
        "docker-compose.yml",
        "services:\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_USER: catalog\n"
        "      POSTGRES_PASSWORD: {V}\n  cache:\n    image: redis:7\n    command: redis-server --requirepass {V2}\n",
        "h5_password",
        True,
    ),
    (
        "Dockerfile",
        "FROM python:3.12-slim\nENV PIP_INDEX_URL=https://ci:{V}@pypi.corp.lan/simple\n"
        "RUN pip install -r requirements.txt\n",
        "h5_url_password",
        True,
    ),
    # -- credential helpers' files ----------------------------------------------------------------------
    (
        "home/.netrc",
        "machine git.corp.lan\n  login dispatch-bot\n  password {V}\n",
        "h5_password",
        True,
    ),
    (
        ".npmrc",
        "@acme:registry=https://npm.pkg.github.com\n//npm.pkg.github.com/:_authToken={V}\n",
        "github",
        True,
    ),
    (
        "home/.pypirc",
        "[distutils]\nindex-servers = pypi\n\n[pypi]\nusername = __token__\npassword = {V}\n",
        "pypi",
        True,
    ),
    (
        "home/.docker/config.json",
        '{\n  "auths": {\n    "registry.corp.lan": {\n      "auth": "{V}"\n    }\n  }\n}\n',
        "basic",
        True,
    ),
    (
        "home/.aws/credentials",
        "[default]\nregion = eu-west-1\n\n[warehouse]\n{V}\n",
        "aws_ini_pair",
        True,
    ),
    # -- weak passwords in tests and fixtures ------------------------------------------------------
    (
        "tests/test_login.py",
        "def test_login(client):\n    resp = client.post('/login', data={'username': 'qa', 'password': '{V}'})\n"
        "    assert resp.status_code == 302\n",
        "h5_weak",
        True,
    ),
    (
        "src/test/java/com/acme/RepoIT.java",
        '@Container\nstatic PostgreSQLContainer<?> pg = new PostgreSQLContainer<>("postgres:16")\n'
        '    .withUsername("catalog")\n    .withPassword("{V}");\n',
        "h5_weak",
        True,
    ),
    (
        "src/test/groovy/LdapSpec.groovy",
        "class LdapSpec extends Specification {\n"
        "    def ldap = new LdapClient('ldap://localhost:389', 'cn=admin,dc=corp,dc=lan', '{V}')\n}\n",
        "h5_weak",
        True,
    ),
    (
        "tests/fixtures/accounts.json",
        '[\n  {"username": "auditlog", "password": "{V}"},\n  {"username": "catalog", "password": "{V2}"}\n]\n',
        "h5_weak",
        True,
    ),
    # -- SQL seeds and logs -----------------------------------------------------------------------------
    (
        "db/init/01-users.sql",
        "CREATE USER reporting WITH PASSWORD '{V}';\nGRANT SELECT ON ALL TABLES IN SCHEMA public TO reporting;\n",
        "h5_password",
        True,
    ),
    (
        "logs/deploy-2024-05-14.log",
        "2024-05-14T09:12:03Z INFO starting deploy of dispatch@4.2.1\n"
        "2024-05-14T09:12:04Z DEBUG env SLACK_BOT_TOKEN={V}\n2024-05-14T09:12:09Z INFO done\n",
        "slack",
        True,
    ),
    # -- framework secrets and more formats ----------------------------------------------------------------
    (
        "laravel/.env",
        "APP_NAME=Dispatch\nAPP_ENV=production\nAPP_KEY={V}\nAPP_DEBUG=false\n",
        "h5_laravel_key",
        True,
    ),
    (
        "config/prod.secret.exs",
        'import Config\n\nconfig :dispatch, DispatchWeb.Endpoint,\n  secret_key_base: "{V}"\n',
        "h5_secret_key_base",
        True,
    ),
    (
        "src/settings.rs",
        'pub const GITHUB_TOKEN: &str = "{V}";\n',
        "github_fine",
        True,
    ),
    (
        "tools/release.kts",
        'val gitlabDeployToken = "{V}"\nval registry = "registry.gitlab.com/acme/catalog"\n',
        "h5_gitlab_deploy",
        True,
    ),
    (
        "sops/age.key",
        "# created: 2024-02-11T10:22:31Z\n# public key: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n{V}\n",
        "age_key",
        True,
    ),
    (
        "deploy/storage.env",
        "AZURE_STORAGE_CONNECTION_STRING={V}\n",
        "h5_azure_storage_cs",
        True,
    ),
    (
        "scripts/fetch_exports.py",
        "EXPORT_URL = '{V}'\n",
        "h5_sas_url",
        True,
    ),
    (
        "src/db.js",
        "const { MongoClient } = require('mongodb');\n\nconst client = new MongoClient('{V}');\n",
        "h5_mongo_uri",
        True,
    ),
    (
        "src/main/resources/application-prod.properties",
        "spring.datasource.url={V}\nspring.jpa.hibernate.ddl-auto=validate\n",
        "h5_jdbc",
        True,
    ),
    # == look-alikes ===========================================================================
    # -- placeholders in the same shapes --------------------------------------------------------
    (
        "android/gradle.properties.example",
        "RELEASE_STORE_FILE=release.jks\nRELEASE_STORE_PASSWORD={V}\nRELEASE_KEY_PASSWORD={V2}\n",
        "h5_placeholder",
        False,
    ),
    (
        "salt/pillar/mysql.sls.example",
        "mysql:\n  server:\n    root_password: '{V}'\n",
        "h5_placeholder",
        False,
    ),
    (
        "grafana/grafana.ini.tmpl",
        "[security]\nadmin_user = admin\nadmin_password = {V}\n",
        "h5_placeholder",
        False,
    ),
    (
        "redis/redis.conf.template",
        "port 6379\nrequirepass {V}\n",
        "h5_placeholder",
        False,
    ),
    (
        "kafka/client-jaas.conf.tmpl",
        "KafkaClient {\n  org.apache.kafka.common.security.scram.ScramLoginModule required\n"
        '  username="fulfilment"\n  password="{V}";\n};\n',
        "h5_placeholder",
        False,
    ),
    (
        "docs/api/quickstart-auth.md",
        "## Authenticate\n\n```sh\ncurl https://api.corp.lan/v2/orders \\\n"
        '  -H "Authorization: Bearer {V}"\n```\n',
        "h5_doc_placeholder",
        False,
    ),
    (
        "README.setup.md",
        "Create `.env`:\n\n```\nSTRIPE_SECRET_KEY={V}\nLINEAR_API_KEY={V2}\n```\n",
        "h5_doc_placeholder",
        False,
    ),
    (
        "wp-config-sample.php",
        "<?php\ndefine( 'NONCE_KEY',  '{V}' );\n",
        "h5_placeholder",
        False,
    ),
    (
        "ansible/roles/db/defaults/main.yml",
        'postgresql_users:\n  - name: loyalty\n    password: "{V}"\n',
        "h5_placeholder",
        False,
    ),
    (
        "chef/templates/default/smtp.json.erb",
        '{\n  "user": "noreply",\n  "password": "{V}"\n}\n',
        "h5_placeholder",
        False,
    ),
    # -- references to environment and secret stores ---------------------------------------------
    (
        "dags/warehouse.py",
        "from airflow.models import Variable\n\npassword = {V}\n",
        "h5_py_ref",
        False,
    ),
    (
        "internal/broker/config.go",
        'func natsOpts() []nats.Option {\n\treturn []nats.Option{nats.UserInfo("webhooks", {V})}\n}\n',
        "h5_go_ref",
        False,
    ),
    (
        "app/build.gradle",
        "signingConfigs {\n    release {\n        storePassword {V}\n        keyPassword {V2}\n    }\n}\n",
        "h5_jvm_ref",
        False,
    ),
    (
        "src/Notify/SmtpSender.cs",
        'var client = new SmtpClient("smtp.corp.lan") {\n'
        '    Credentials = new NetworkCredential("alerts", {V})\n};\n',
        "h5_cs_ref",
        False,
    ),
    (
        "config/initializers/stripe.rb",
        "Stripe.api_key = {V}\n",
        "h5_rb_ref",
        False,
    ),
    (
        "src/config.rs",
        "let api_token = {V};\n",
        "h5_rust_ref",
        False,
    ),
    (
        "config/mail.php",
        "<?php\nreturn [\n    'password' => {V},\n];\n",
        "h5_php_ref",
        False,
    ),
    (
        "scripts/backup.sh",
        "#!/bin/sh\nPGPASSWORD={V} pg_dump \\\n  -h warehouse-db.prod.internal -U etl analytics > dump.sql\n",
        "h5_shell_ref",
        False,
    ),
    (
        ".buildkite/pipeline.deploy.yml",
        "steps:\n  - command: docker login -u acmebot -p {V} registry.corp.lan\n",
        "h5_ci_ref",
        False,
    ),
    (
        ".drone.deploy.yml",
        "steps:\n  - name: publish\n    environment:\n      REGISTRY_PASSWORD: {V}\n",
        "h5_ci_ref",
        False,
    ),
    (
        "helm/dispatch/values.yaml",
        "externalSecrets:\n  db:\n    remoteRef: {V}\n",
        "h5_store_ref",
        False,
    ),
    (
        "k8s/deployment.yaml",
        "env:\n  - name: DB_PASSWORD\n    valueFrom:\n      secretKeyRef:\n        name: {V}\n"
        "        key: password\n",
        "secret_name",
        False,
    ),
    (
        "prometheus/scrape-secure.yml",
        "scrape_configs:\n  - job_name: node\n    basic_auth:\n      username: scraper\n"
        "      password_file: {V}\n",
        "secret_path",
        False,
    ),
    (
        "infra/variables.tf",
        'resource "aws_db_instance" "loyalty" {\n  username = "loyalty"\n  password = {V}\n}\n',
        "tune6_tf_ref",
        False,
    ),
    (
        "cloudformation/db.yaml",
        "MasterUserPassword: {V}\n",
        "tune7_iac_ref",
        False,
    ),
    # -- credentials on documentation hosts, AWS documentation keys --------------------------------
    (
        "docs/configuration.md",
        "Connection string format:\n\n    DATABASE_URL={V}\n",
        "h5_doc_uri",
        False,
    ),
    (
        "docs/source/brokers.rst",
        "Brokers\n=======\n\n.. code-block:: python\n\n    app = Celery(broker='{V}')\n",
        "h5_doc_uri",
        False,
    ),
    (
        "docs/aws.md",
        "Example credentials file:\n\n```ini\n[default]\naws_access_key_id = {V}\n```\n",
        "h5_aws_doc",
        False,
    ),
    (
        "tests/fixtures/boto_stub.py",
        "STUB_SECRET = '{V}'\n",
        "h5_aws_doc",
        False,
    ),
    # -- hashes, digests, ids, versions ------------------------------------------------------------
    (
        "db/seeds/admins.sql",
        "INSERT INTO admins (login, password_hash) VALUES ('ops', '{V}');\n",
        "h5_hash",
        False,
    ),
    (
        "traefik/usersfile",
        "admin:{V}\n",
        "apr1",
        False,
    ),
    (
        "config/users.yml",
        'users:\n  - name: dispatch\n    password_hash: "{V}"\n',
        "h5_hash",
        False,
    ),
    (
        "deploy/image.lock",
        "image: registry.corp.lan/dispatch@{V}\n",
        "h5_image_digest",
        False,
    ),
    (
        "checksums/SHA256SUMS.md",
        "| file | checksum |\n|---|---|\n| dispatch-linux-amd64.tar.gz | {V} |\n",
        "h5_digest",
        False,
    ),
    (
        "logs/access.log",
        '10.4.0.2 - - [14/May/2024:09:12:03 +0000] "GET /v2/orders HTTP/1.1" 200 512 request_id={V}\n',
        "h5_trace_id",
        False,
    ),
    (
        "spec/cassettes/warehouse/get_order.yml",
        "  response:\n    headers:\n      X-Request-Id:\n      - {V}\n      Content-Type:\n"
        "      - application/json\n",
        "h5_trace_id",
        False,
    ),
    (
        "src/middleware/trace.ts",
        "export const TRACE_HEADER = 'x-correlation-id';\nconst sampleCorrelationId = '{V}';\n",
        "request_id",
        False,
    ),
    (
        "Cargo.toml",
        '[package]\nname = "catalog"\nversion = "{V}"\n\n[dependencies]\nserde = "1"\n',
        "h5_version",
        False,
    ),
    (
        "gradle/libs.versions.toml",
        '[versions]\nkotlin = "{V}"\nsecretsManager = "{V2}"\n',
        "h5_version",
        False,
    ),
    (
        "config/azure.json",
        '{\n  "tenantId": "{V}",\n  "subscriptionId": "{V2}"\n}\n',
        "request_id",
        False,
    ),
    # -- public keys, certificates, encrypted keys, ciphertext ----------------------------------------
    (
        "certs/ca-bundle.pem",
        "{V}\n",
        "h5_public",
        False,
    ),
    (
        "helm/dispatch/values-ca.yaml",
        "tls:\n  caCert: |\n    {IV}\n",
        "certificate",
        False,
    ),
    (
        "deploy/authorized_keys",
        "{V}\n",
        "ssh_public",
        False,
    ),
    (
        "nats/accounts.conf",
        "accounts {\n  DISPATCH {\n    users = [{ nkey: {V} }]\n  }\n}\n",
        "nkey_public",
        False,
    ),
    (
        "config/jwks-public.json",
        '{\n  "keys": [\n    {\n      "kty": "RSA",\n      "kid": "dispatch-2024",\n      "e": "AQAB",\n'
        '      "n": "{V}"\n    }\n  ]\n}\n',
        "rsa_n",
        False,
    ),
    (
        "deploy/keys/server.key.enc",
        "{V}\n",
        "h5_encrypted",
        False,
    ),
    (
        "ansible/inventories/prod/group_vars/vault.yml",
        "vault_db_password: !vault |\n  {IV}\n",
        "ansible_vault",
        False,
    ),
    (
        "secrets/prod.enc.yaml",
        "smtp:\n  password: {V}\n",
        "h5_cipher_text",
        False,
    ),
    (
        "sops/.sops.yaml",
        "creation_rules:\n  - path_regex: secrets/.*\n    age: {V}\n",
        "age_public",
        False,
    ),
    # -- UI text, prose, masked values, nonces, images -------------------------------------------------
    (
        "src/locales/fi.json",
        '{\n  "PASSWORD_TOO_SHORT": "{V}",\n  "PASSWORD_MISMATCH": "{V2}"\n}\n',
        "h5_i18n",
        False,
    ),
    (
        "lib/l10n/app_hu.arb",
        '{\n  "passwordLabel": "{V}"\n}\n',
        "h5_i18n",
        False,
    ),
    (
        "docs/security.md",
        "# Secrets\n\nThe production database password {V}.\n",
        "h5_prose",
        False,
    ),
    (
        "logs/billing.log",
        "2024-06-02 11:40:01 INFO charging card with key {V}\n",
        "h5_masked",
        False,
    ),
    (
        "templates/base.html",
        '<script nonce="{V}" src="/static/app.js"></script>\n',
        "h5_csp_nonce",
        False,
    ),
    (
        "static/css/fonts.css",
        "@font-face {\n  font-family: 'Inter';\n  src: url(data:font/woff2;base64,{V}) format('woff2');\n}\n",
        "h5_font_b64",
        False,
    ),
    (
        "src/assets/logo.ts",
        "export const logo = 'data:image/png;base64,{V}';\n",
        "png_b64",
        False,
    ),
    (
        "web/src/config.ts",
        "export const publicConfig = {\n  clientId: '{V}',\n};\n",
        "h5_public_id",
        False,
    ),
    (
        "api/errors.yaml",
        "errors:\n  invalid_password:\n    code: {V}\n    message: Password does not match\n",
        "error_code",
        False,
    ),
    (
        "tests/test_password_policy.py",
        "def test_min_length():\n    assert policy.min_password_length == {V}\n",
        "small_int",
        False,
    ),
    (
        "src/auth/oauth.kt",
        'val body = FormBody.Builder()\n    .add("grant_type", "{V}")\n    .build()\n',
        "grant_type",
        False,
    ),
    (
        "tests/test_tokens.py",
        "# checksum deliberately broken: must not validate\nBROKEN = '{V}'\n",
        "bad_github",
        False,
    ),
    (
        "home/.netrc.example",
        "machine git.corp.lan\n  login dispatch-bot\n  password {V}\n",
        "h5_placeholder",
        False,
    ),
    (
        "ios/Sources/Config/Keys.swift",
        "enum Keys {\n    static let api = {V}\n}\n",
        "h5_swift_ref",
        False,
    ),
    (
        "lib/src/config.dart",
        "final apiKey = {V};\n",
        "h5_dart_ref",
        False,
    ),
    (
        "src/main/scala/db/DbConfig.scala",
        "object DbConfig {\n  val password: String = {V}\n}\n",
        "h5_scala_ref",
        False,
    ),
    (
        "scripts/deploy.pl",
        "my $token = {V};\n$ua->default_header('Authorization' => \"Bearer $token\");\n",
        "h5_perl_ref",
        False,
    ),
    (
        "vars/deployArtifact.groovy",
        'def call() {\n    sh "curl -u deployer:${{V}} -T build.zip https://nexus.corp.lan/"\n}\n',
        "h5_groovy_ref",
        False,
    ),
    (
        "spec/cassettes/warehouse/filtered.yml",
        "- request:\n    headers:\n      Authorization:\n      - Bearer {V}\n",
        "h5_masked",
        False,
    ),
]

#: ``evalset.build`` makes this part's values with this class.
VALUES = Heldout5Values
