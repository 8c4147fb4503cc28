"""Blind-written tuning part ``tune9``: shapes of real repositories, written without
knowledge of the scanner (see ``evalset.py`` for how parts are built and labelled).

Each template is one file; every ``{V}``/``{V2}``/... slot is one labelled value of the
template's kind, and the whole template is either credentials (positive) or look-alikes.
More than half of the templates are less common shapes: mobile, data tooling, config
management, observability, proxies, database config files, messaging, SaaS SDK init code,
IaC, less common CI systems, mail settings in many frameworks and prose.
"""

from __future__ import annotations

import base64
import json
import string
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import evalset
from evalset import ALNUM, Template

HEX = "0123456789abcdef"
URLSAFE = ALNUM + "_-"
UPPER_DIGITS = string.ascii_uppercase + string.digits

MULTI_SLOT = True


class Tune9Values(evalset.Values):
    """Value generators of the ``tune9`` part: its own words and service users."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "pumice",
            "wombat",
            "cardamom",
            "fjord",
            "obsidian",
            "kumquat",
            "mistral",
            "puffin",
            "zeppelin",
        ]
        self.users = [
            "relay",
            "fulfil",
            "telemetry",
            "archivist",
            "webhookd",
            "pricing",
            "geoip",
            "ledgerd",
        ]

    def _b64(self, n: int) -> str:
        return base64.b64encode(self.rng.randbytes(n)).decode()

    # -- positives ------------------------------------------------------------------------
    def t9_word(self) -> str:
        """A weak dictionary-word password, as test and example code use."""
        return self.pick(self.words) + self.pick(["", "1", "123", "2024", "!"])

    def t9_pem(self) -> str:
        label = self.pick(
            ["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"]
        )
        return self.pem(label, self.rng.randrange(4, 12))

    def t9_fcm(self) -> str:
        return "AAAA" + self.s(7, URLSAFE) + ":APA91b" + self.s(134, URLSAFE)

    def t9_airtable(self) -> str:
        return "pat" + self.s(14) + "." + self.s(64, HEX)

    def t9_figma(self) -> str:
        return "figd_" + self.s(40, URLSAFE)

    def t9_okta(self) -> str:
        return "00" + self.s(40, URLSAFE)

    def t9_planetscale(self) -> str:
        return "pscale_pw_" + self.s(43, URLSAFE)

    def t9_replicate(self) -> str:
        return "r8_" + self.s(37)

    def t9_groq(self) -> str:
        return "gsk_" + self.s(52)

    def t9_pulumi(self) -> str:
        return "pul-" + self.s(40, HEX)

    def t9_buildkite(self) -> str:
        return "bkua_" + self.s(40, HEX)

    def t9_mapbox(self) -> str:
        claims = {
            "u": self.pick(self.users),
            "a": self.s(25, string.ascii_lowercase + string.digits),
        }
        body = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode())
        return "sk." + body.decode().rstrip("=") + "." + self.s(22, URLSAFE)

    def t9_gitlab_runner(self) -> str:
        return "glrt-" + self.s(20, URLSAFE)

    def t9_dockerhub(self) -> str:
        return "dckr_pat_" + self.s(27, URLSAFE)

    def t9_braintree(self) -> str:
        return f"access_token$production${self.s(16, string.ascii_lowercase + string.digits)}${self.s(32, HEX)}"

    def t9_fly(self) -> str:
        return "fo1_" + self.s(43, URLSAFE)

    def t9_netlify(self) -> str:
        return "nfp_" + self.s(36)

    def t9_wireguard(self) -> str:
        return self._b64(32)

    def t9_fernet(self) -> str:
        return base64.urlsafe_b64encode(self.rng.randbytes(32)).decode()

    def t9_pgp_private(self) -> str:
        body = self._b64(48 * 14)
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        return (
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n"
            + "\n".join(rows)
            + f"\n={self._b64(3)}\n-----END PGP PRIVATE KEY BLOCK-----"
        )

    def t9_putty(self) -> str:
        public = self._b64(48 * 4)
        private = self._b64(48 * 8)
        pub_rows = [public[i : i + 64] for i in range(0, len(public), 64)]
        priv_rows = [private[i : i + 64] for i in range(0, len(private), 64)]
        return (
            "PuTTY-User-Key-File-2: ssh-rsa\nEncryption: none\n"
            f"Comment: {self.pick(self.users)}@bastion\n"
            f"Public-Lines: {len(pub_rows)}\n" + "\n".join(pub_rows) + "\n"
            f"Private-Lines: {len(priv_rows)}\n" + "\n".join(priv_rows) + "\n"
            f"Private-MAC: {self.s(40, HEX)}"
        )

    def t9_kafka_secret(self) -> str:
        return self.s(64, ALNUM + "+/")

    def t9_cloudflare(self) -> str:
        return self.s(40, URLSAFE)

    def t9_bitbucket(self) -> str:
        return "ATBB" + self.s(32) + self.s(8, "0123456789ABCDEF")

    def t9_sonar(self) -> str:
        return "squ_" + self.s(40, HEX)

    # -- look-alikes ------------------------------------------------------------------------
    def t9_placeholder(self) -> str:
        return self.pick(
            [
                "<db-password>",
                "${DB_PASS}",
                "{{ pillar['db']['password'] }}",
                "###SMTP_PASSWORD###",
                "xxxxxxxxxxxxxxxx",
                "**********",
                "<%= @db_password %>",
                "{{ .Values.smtp.password }}",
                "${SECRET_KEY:?unset}",
                "<set-in-ci>",
                "{{SENDGRID_API_KEY}}",
                "###API_TOKEN###",
            ]
        )

    def t9_env_ref(self) -> str:
        return self.pick(
            [
                "$DB_PASSWORD",
                "${DB_PASSWORD}",
                "$(cat /run/secrets/db_password)",
                "${{ secrets.DB_PASSWORD }}",
                "$(DB_PASSWORD)",
                "%DB_PASSWORD%",
            ]
        )

    def t9_jinja_ref(self) -> str:
        return self.pick(
            [
                "\"{{ env_var('DBT_PASSWORD') }}\"",
                "\"{{ salt['pillar.get']('mysql:pass') }}\"",
                "\"{{ lookup('env', 'DB_PASS') }}\"",
                '"{{ vault_mysql_password }}"',
            ]
        )

    def t9_dart_ref(self) -> str:
        return self.pick(
            [
                "String.fromEnvironment('STRIPE_KEY')",
                "dotenv.env['API_KEY']!",
                "const String.fromEnvironment('SUPABASE_KEY', defaultValue: '')",
            ]
        )

    def t9_xcode_ref(self) -> str:
        return self.pick(["$(STRIPE_SECRET_KEY)", "${API_KEY}", "$(MAPBOX_TOKEN)"])

    def t9_i18n(self) -> str:
        return self.pick(
            [
                "Heslo je příliš krátké",
                "Salasana on virheellinen",
                "A jelszó nem egyezik",
                "Kata sandi salah",
                "পাসওয়ার্ড ভুল",
                "პაროლი არასწორია",
                "Parola yanlış, tekrar deneyin",  # noqa: RUF001
                "비밀번호를 입력하세요",
                "Adgangskoden er forkert",
                "Parolă incorectă",
            ]
        )

    def t9_xrun(self) -> str:
        return self.pick(
            [
                "x" * self.rng.randrange(16, 41),
                "*" * self.rng.randrange(8, 20),
                "XXXX-XXXX-XXXX-XXXX",
            ]
        )

    def t9_aws_example(self) -> str:
        return self.pick(
            [
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
            ]
        )

    def t9_mysql_hash(self) -> str:
        return "*" + self.s(40, "0123456789ABCDEF")

    def t9_rabbit_hash(self) -> str:
        return self._b64(36)

    def t9_eyaml(self) -> str:
        return (
            "ENC[PKCS7,MIIBiQYJKoZIhvcNAQcDoIIBejCCAXYCAQAxggEhMIIBHQIBADAFMAACAQEw"
            + self._b64(180)
            + "]"
        )

    def t9_chef_enc(self) -> str:
        return self._b64(48)

    def t9_pulumi_secure(self) -> str:
        return "v1:" + self._b64(12) + ":" + self._b64(40)

    def t9_vault_ct(self) -> str:
        return "vault:v1:" + self._b64(48)

    def t9_jasypt(self) -> str:
        return "ENC(" + self._b64(32) + ")"

    def t9_travis_secure(self) -> str:
        return self._b64(256)

    def t9_teamcity_ref(self) -> str:
        return "credentialsJSON:" + str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def t9_pin(self) -> str:
        return self._b64(32)

    def t9_woff(self) -> str:
        return base64.b64encode(b"wOF2\x00\x01\x00\x00" + self.rng.randbytes(180)).decode()

    def t9_grafana_ref(self) -> str:
        return self.pick(
            [
                "$__file{/etc/grafana/secrets/admin}",
                "$__env{GF_ADMIN_PW}",
                "$__vault{kv:grafana:admin}",
            ]
        )

    def t9_twilio_sid(self) -> str:
        return "AC" + self.s(32, HEX)

    def t9_ui_label(self) -> str:
        return self.pick(
            [
                "Enter your API key",
                "Password must contain a digit",
                "Show password",
                "Token copied!",
                "Forgot your password?",
            ]
        )


TEMPLATES: list[Template] = [
    # ---- mobile -------------------------------------------------------------------------
    (
        "android/gradle.properties",
        "org.gradle.jvmargs=-Xmx4g\nandroid.useAndroidX=true\nRELEASE_STORE_FILE=release.jks\n"
        "RELEASE_STORE_PASSWORD={V}\nRELEASE_KEY_ALIAS=upload\nRELEASE_KEY_PASSWORD={V2}\n",
        "password",
        True,
    ),
    (
        "ios/App/Secrets.plist",
        '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" '
        '"http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n<plist version="1.0">\n<dict>\n'
        "\t<key>StripeSecretKey</key>\n\t<string>{V}</string>\n\t<key>Environment</key>\n\t<string>production</string>\n</dict>\n</plist>\n",
        "stripe",
        True,
    ),
    (
        "ios/Sources/MapConfig.swift",
        "import MapboxMaps\n\nenum MapConfig {\n    // downloads token, used by the offline tile job\n"
        '    static let downloadsToken = "{V}"\n}\n',
        "t9_mapbox",
        True,
    ),
    (
        "lib/src/env.dart",
        "class Env {\n  static const supabaseUrl = 'https://qwkzjxbprtl.supabase.co';\n"
        "  static const serviceRoleKey =\n      '{V}';\n}\n",
        "jwt",
        True,
    ),
    (
        "android/app/src/main/java/com/shop/push/FcmSender.kt",
        'object FcmSender {\n    private const val SERVER_KEY = "{V}"\n\n'
        '    fun headers() = mapOf("Authorization" to "key=$SERVER_KEY", "Content-Type" to "application/json")\n}\n',
        "t9_fcm",
        True,
    ),
    # ---- data tooling -----------------------------------------------------------------------
    (
        "airflow/.env",
        "AIRFLOW__CORE__EXECUTOR=CeleryExecutor\n"
        "AIRFLOW_CONN_WAREHOUSE='postgres://etl_loader:{V}@warehouse.prod.internal:5432/analytics'\n",
        "url_password",
        True,
    ),
    (
        "airflow/airflow.cfg",
        "[core]\ndags_folder = /opt/airflow/dags\nload_examples = False\nfernet_key = {V}\n\n[webserver]\nexpose_config = False\n",
        "t9_fernet",
        True,
    ),
    (
        "dbt/profiles.yml",
        "analytics:\n  target: prod\n  outputs:\n    prod:\n      type: postgres\n      host: pg-analytics.internal\n"
        "      user: dbt_runner\n      password: {V}\n      port: 5432\n      dbname: analytics\n      schema: marts\n",
        "password",
        True,
    ),
    (
        "conf/spark-defaults.conf",
        "spark.master                      yarn\nspark.hadoop.fs.s3a.impl          org.apache.hadoop.fs.s3a.S3AFileSystem\n"
        "spark.hadoop.fs.s3a.secret.key    {V}\nspark.eventLog.enabled            true\n",
        "aws_secret",
        True,
    ),
    (
        "notebooks/explore_embeddings.ipynb",
        '{\n "cells": [\n  {\n   "cell_type": "code",\n   "execution_count": 3,\n   "metadata": {},\n   "outputs": [],\n'
        '   "source": [\n    "import openai\\n",\n    "client = openai.OpenAI(api_key=\\"{V}\\")\\n"\n   ]\n  }\n ],\n'
        ' "metadata": {"kernelspec": {"name": "python3"}},\n "nbformat": 4,\n "nbformat_minor": 5\n}\n',
        "openai",
        True,
    ),
    # ---- config management ----------------------------------------------------------------------
    (
        "salt/pillar/mysql.sls",
        "mysql:\n  server:\n    root_user: root\n    root_password: {V}\n  database:\n    - shop\n",
        "password",
        True,
    ),
    (
        "chef/data_bags/credentials/smtp.json",
        '{\n  "id": "smtp",\n  "host": "smtp.mailgun.org",\n  "user": "postmaster@mg.fulfil.io",\n  "password": "{V}"\n}\n',
        "mailgun",
        True,
    ),
    (
        "hieradata/common.yaml",
        "---\nprofile::postgres::listen: '*'\nprofile::postgres::replication_password: '{V}'\nprofile::ntp::servers:\n  - 0.pool.ntp.org\n",
        "password",
        True,
    ),
    (
        "ansible/inventory/hosts.ini",
        "[db]\ndb01.corp.internal ansible_user=deploy ansible_become_pass={V}\n"
        "db02.corp.internal ansible_user=deploy ansible_become_pass={V2}\n",
        "password",
        True,
    ),
    (
        "ansible/group_vars/all.yml",
        "---\nntp_server: time.corp.internal\nmysql_root_password: {V}\nmysql_replica_password: {V2}\n",
        "t9_word",
        True,
    ),
    # ---- observability ----------------------------------------------------------------------------
    (
        "grafana/grafana.ini",
        "[server]\nhttp_port = 3000\n\n[security]\nadmin_user = admin\nadmin_password = {V}\n\n"
        "[smtp]\nenabled = true\nhost = smtp.office365.com:587\nuser = alerts@corp.io\npassword = {V2}\n",
        "password",
        True,
    ),
    (
        "prometheus/prometheus.yml",
        "scrape_configs:\n  - job_name: federate\n    scheme: https\n    basic_auth:\n      username: telemetry\n"
        "      password: {V}\n    static_configs:\n      - targets: ['prom-eu.corp.internal:9090']\n",
        "password",
        True,
    ),
    (
        "alertmanager/alertmanager.yml",
        "global:\n  slack_api_url: '{V}'\nroute:\n  receiver: ops\nreceivers:\n  - name: ops\n"
        "    slack_configs:\n      - channel: '#alerts'\n",
        "slack_webhook",
        True,
    ),
    (
        "alertmanager/pagerduty.yml",
        "receivers:\n  - name: pager\n    pagerduty_configs:\n      - routing_key: {V}\n        severity: critical\n",
        "hex32",
        True,
    ),
    # ---- web servers and proxies ---------------------------------------------------------------------
    (
        "nginx/conf.d/upstream.conf",
        "location /internal/ {\n    proxy_pass http://backoffice:8080;\n"
        '    proxy_set_header Authorization "Basic {V}";\n}\n',
        "basic",
        True,
    ),
    (
        "haproxy/haproxy.cfg",
        "userlist stats_users\n    user admin insecure-password {V}\n\nlisten stats\n    bind :8404\n"
        "    stats enable\n    stats auth ops:{V2}\n",
        "password",
        True,
    ),
    # ---- databases' own config -------------------------------------------------------------------------
    (
        "docker/mysql/my.cnf",
        "[client]\nuser=backup\npassword={V}\nhost=127.0.0.1\n\n[mysqld]\nbind-address=0.0.0.0\n",
        "password",
        True,
    ),
    (
        "redis/redis.conf",
        "bind 0.0.0.0\nport 6379\nrequirepass {V}\nmasterauth {V}\nappendonly yes\n",
        "password",
        True,
    ),
    (
        "home/.pgpass",
        "db-primary.prod.internal:5432:*:ledgerd:{V}\ndb-replica.prod.internal:5432:*:readonly:{V2}\n",
        "password",
        True,
    ),
    (
        "scripts/mongo-migrate.js",
        "// run with mongosh\nconst uri = 'mongodb+srv://archivist:{V}@cluster0.x8kq2.mongodb.net/archive?retryWrites=true';\n"
        "const client = new MongoClient(uri);\n",
        "url_password",
        True,
    ),
    # ---- messaging -------------------------------------------------------------------------------------
    (
        "kafka/kafka_client_jaas.conf",
        "KafkaClient {\n  org.apache.kafka.common.security.plain.PlainLoginModule required\n"
        '  username="R7QXKZ2M4NDL3TWA"\n  password="{V}";\n};\n',
        "t9_kafka_secret",
        True,
    ),
    (
        "rabbitmq/rabbitmq.conf",
        "listeners.tcp.default = 5672\ndefault_user = relay\ndefault_pass = {V}\nmanagement.tcp.port = 15672\n",
        "password",
        True,
    ),
    (
        "nats/server.conf",
        "port: 4222\nauthorization {\n  users = [\n    {user: pricing, password: {V}}\n    {user: geoip, password: {V2}}\n  ]\n}\n",
        "t9_word",
        True,
    ),
    (
        "nats/relay.creds",
        "-----BEGIN NATS USER JWT-----\n(elided for the fixture)\n------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\nNKEY Seed printed below can be used to sign and prove identity.\n\n"
        "-----BEGIN USER NKEY SEED-----\n{V}\n------END USER NKEY SEED------\n",
        "nkey",
        True,
    ),
    (
        "internal/bus/bus_test.go",
        'func TestPublish(t *testing.T) {\n\tnc, err := nats.Connect("nats://pricing:{V}@localhost:4222")\n'
        "\tif err != nil {\n\t\tt.Fatal(err)\n\t}\n\tdefer nc.Close()\n}\n",
        "t9_word",
        True,
    ),
    # ---- payment and SaaS SDK init ------------------------------------------------------------------------
    (
        "config/initializers/stripe.rb",
        "Rails.configuration.stripe = {\n  publishable_key: ENV['STRIPE_PK'],\n  secret_key: '{V}'\n}\n"
        "Stripe.api_key = Rails.configuration.stripe[:secret_key]\n",
        "stripe",
        True,
    ),
    (
        "payments/gateway.py",
        'import braintree\n\ngateway = braintree.BraintreeGateway(\n    access_token="{V}"\n)\n',
        "t9_braintree",
        True,
    ),
    (
        "src/notify/sms.js",
        "const twilio = require('twilio');\nconst client = twilio('AC5f2b9c1d7e3a4b6c8d0e2f4a6b8c0d2e', '{V}');\n"
        "module.exports = (to, body) => client.messages.create({ to, from: '+15005550006', body });\n",
        "tune6_twilio_token",
        True,
    ),
    (
        "scripts/export_icons.ts",
        "const res = await fetch(`https://api.figma.com/v1/files/${fileKey}/images`, {\n"
        "  headers: { 'X-Figma-Token': '{V}' },\n});\n",
        "t9_figma",
        True,
    ),
    (
        "Sources/Payments/PaymentsConfig.swift",
        'struct PaymentsConfig {\n    static let consumerKey = "pricing-app"\n    static let client_secret = "{V}"\n}\n',
        "hex64",
        True,
    ),
    (
        "app/Http/Controllers/TwitterController.php",
        "<?php\n$connection = new TwitterOAuth(\n    'consumer_key' => '{V}',\n    'consumer_secret' => getenv('TW_SECRET'),\n);\n",
        "twitter_key",
        True,
    ),
    (
        "src/main/kotlin/social/TwitterClient.kt",
        'class TwitterClient {\n    private val consumerSecret = "{V}"\n}\n',
        "twitter_secret",
        True,
    ),
    (
        "src/main/java/com/corp/geo/GeoClient.java",
        'public final class GeoClient {\n    private static final String key = "{V}";\n\n'
        '    public URI lookup(String ip) {\n        return URI.create(BASE + ip + "?key=" + key);\n    }\n}\n',
        "hex32",
        True,
    ),
    (
        "Services/Auth/GraphOptions.cs",
        'public static class GraphOptions\n{\n    public const string TenantId = "common";\n'
        '    public const string ClientSecret = "{V}";\n}\n',
        "azure_client_secret",
        True,
    ),
    (
        "src/snyk.rs",
        'const SNYK_API_KEY: &str = "{V}";\n\nfn client() -> reqwest::Client {\n    reqwest::Client::new()\n}\n',
        "uuid_key",
        True,
    ),
    (
        "src/main/scala/hooks/Signer.scala",
        'object Signer {\n  private val secret = "{V}"\n  def sign(body: String): String = HmacSha256(secret, body)\n}\n',
        "hex64",
        True,
    ),
    (
        "lib/wallet/seed.rb",
        'module Wallet\n  CONFIG = {\n    network: :testnet,\n    seed: "{V}"\n  }\nend\n',
        "hex128",
        True,
    ),
    # ---- IaC -----------------------------------------------------------------------------------------------
    (
        "infra/Pulumi.prod.yaml",
        "config:\n  aws:region: eu-west-1\n  shop:dbUser: shop\n  shop:dbPassword: {V}\n",
        "password",
        True,
    ),
    (
        "cdk/lib/db-stack.ts",
        "new rds.DatabaseInstance(this, 'Db', {\n  engine: rds.DatabaseInstanceEngine.POSTGRES,\n"
        "  credentials: rds.Credentials.fromPassword('shop', SecretValue.unsafePlainText('{V}')),\n});\n",
        "password",
        True,
    ),
    (
        "infra/main.bicep",
        "param location string = resourceGroup().location\nparam adminLogin string = 'sqladmin'\n"
        "param adminPassword string = '{V}'\n",
        "password",
        True,
    ),
    (
        "cfn/database.yaml",
        "Resources:\n  Db:\n    Type: AWS::RDS::DBInstance\n    Properties:\n      Engine: mysql\n"
        "      MasterUsername: admin\n      MasterUserPassword: {V}\n",
        "password",
        True,
    ),
    (
        "terraform/providers.tf",
        'provider "cloudflare" {\n  api_token = "{V}"\n}\n',
        "t9_cloudflare",
        True,
    ),
    (
        "terraform/backend.tf",
        'provider "aws" {\n  region     = "eu-central-1"\n  {IV}\n}\n',
        "aws_tf_pair",
        True,
    ),
    # ---- CI systems ------------------------------------------------------------------------------------------
    (
        ".drone.yml",
        "kind: pipeline\nname: publish\nsteps:\n  - name: docker\n    image: plugins/docker\n    settings:\n"
        "      repo: fulfil/api\n      username: fulfilci\n      password: {V}\n",
        "t9_dockerhub",
        True,
    ),
    (
        ".teamcity/settings.kts",
        'object Analyze : BuildType({\n    params {\n        param("env.SONAR_TOKEN", "{V}")\n    }\n})\n',
        "t9_sonar",
        True,
    ),
    (
        ".travis.yml",
        "language: python\ndeploy:\n  provider: script\n  script: twine upload -u __token__ -p {V} dist/*\n",
        "pypi",
        True,
    ),
    (
        ".gitlab-ci.yml",
        "register-runner:\n  stage: setup\n  script:\n    - gitlab-runner register --non-interactive \\\n"
        "        --url https://gitlab.corp.internal \\\n        --token {V} \\\n        --executor docker\n",
        "t9_gitlab_runner",
        True,
    ),
    (
        ".circleci/config.yml",
        'jobs:\n  release:\n    steps:\n      - run: echo "//registry.npmjs.org/:_authToken={V}" > ~/.npmrc\n      - run: npm publish\n',
        "npm",
        True,
    ),
    (
        "azure-pipelines.yml",
        "variables:\n  - name: ARM_CLIENT_ID\n    value: 3f1c2d9e-ops-sp\n  - name: ARM_CLIENT_SECRET\n    value: {V}\n",
        "azure_client_secret",
        True,
    ),
    (
        "bitbucket-pipelines.yml",
        "pipelines:\n  default:\n    - step:\n        script:\n          - pipe: atlassian/bitbucket-upload-file:0.7.1\n"
        "            variables:\n              BITBUCKET_USERNAME: relay-bot\n              BITBUCKET_APP_PASSWORD: {V}\n",
        "t9_bitbucket",
        True,
    ),
    (
        ".github/workflows/deploy.yml",
        "jobs:\n  deploy:\n    runs-on: ubuntu-latest\n    env:\n      FLY_API_TOKEN: {V}\n    steps:\n      - run: flyctl deploy --remote-only\n",
        "t9_fly",
        True,
    ),
    (
        "Jenkinsfile",
        "pipeline {\n  agent any\n  stages {\n    stage('Publish') {\n      steps {\n"
        "        withEnv(['PULUMI_ACCESS_TOKEN={V}']) {\n          sh 'pulumi up --yes'\n        }\n      }\n    }\n  }\n}\n",
        "t9_pulumi",
        True,
    ),
    (
        ".buildkite/hooks/environment",
        '#!/bin/bash\nset -euo pipefail\nexport BUILDKITE_API_TOKEN="{V}"\n',
        "t9_buildkite",
        True,
    ),
    # ---- mail -------------------------------------------------------------------------------------------------
    (
        "shop/settings/production.py",
        "EMAIL_BACKEND = 'django.core.mail.backends.smtp.EmailBackend'\nEMAIL_HOST = 'smtp.sendgrid.net'\n"
        "EMAIL_HOST_USER = 'apikey'\nEMAIL_HOST_PASSWORD = '{V}'\n",
        "sendgrid",
        True,
    ),
    (
        "src/main/resources/application-prod.properties",
        "spring.mail.host=smtp.eu.mailgun.org\nspring.mail.username=postmaster@mg.corp.io\nspring.mail.password={V}\n",
        "password",
        True,
    ),
    (
        "src/mailer.js",
        "const transport = nodemailer.createTransport({\n  host: 'smtp.zoho.eu',\n  port: 465,\n"
        "  auth: { user: 'billing@corp.io', pass: '{V}' },\n});\n",
        "password",
        True,
    ),
    (
        "internal/mail/send.go",
        'func send(to []string, msg []byte) error {\n\tauth := smtp.PlainAuth("", "relay@corp.io", "{V}", "smtp.corp.io")\n'
        '\treturn smtp.SendMail("smtp.corp.io:587", auth, "relay@corp.io", to, msg)\n}\n',
        "password",
        True,
    ),
    (
        "lib/Mailer.php",
        "<?php\n$mail = new PHPMailer(true);\n$mail->Host = 'smtp.office365.com';\n$mail->Username = 'reports@corp.io';\n"
        "$mail->Password = '{V}';\n",
        "password",
        True,
    ),
    # ---- prose -------------------------------------------------------------------------------------------------
    (
        "README.md",
        "## Local setup\n\nCopy this into `.env`:\n\n```\nSTRIPE_SECRET_KEY={V}\nSTRIPE_CURRENCY=eur\n```\n",
        "stripe",
        True,
    ),
    (
        "docs/runbooks/vault-unseal.md",
        "# Recovering the staging cluster\n\n1. Log in with the break-glass token:\n\n"
        "       export VAULT_TOKEN={V}\n       vault operator raft list-peers\n",
        "vault_token",
        True,
    ),
    (
        "docs/source/deploy.rst",
        "Deploying\n=========\n\n.. code-block:: bash\n\n   curl -u pricing:{V} \\\n     https://registry.corp.internal/v2/_catalog\n",
        "url_password",
        True,
    ),
    (
        ".github/ISSUE_TEMPLATE/bug.md",
        "### Logs\n\n```\n> GET /v1/orders HTTP/1.1\n> Host: api.fulfil.io\n> Authorization: Bearer {V}\n< HTTP/1.1 500\n```\n",
        "github_fine",
        True,
    ),
    (
        "wiki/Onboarding.md",
        "Shared Grafana service account (read only): token `{V}`, ask #ops before rotating.\n",
        "grafana_sa",
        True,
    ),
    # ---- headers in code, cassettes, curl ---------------------------------------------------------------------------
    (
        "internal/client/http.go",
        'req, _ := http.NewRequest("GET", base+"/v1/shipments", nil)\nreq.Header.Set("Authorization", "Basic {V}")\n',
        "basic",
        True,
    ),
    (
        "app/clients/replicate.py",
        'TOKEN = "{V}"\n\n\ndef run(model):\n    return httpx.post(URL, headers={"Authorization": f"Bearer {TOKEN}"}, json=model)\n',
        "t9_replicate",
        True,
    ),
    (
        "tests/cassettes/test_orders.yaml",
        "interactions:\n- request:\n    body: null\n    headers:\n      Accept:\n      - application/json\n"
        "      Authorization:\n      - Token {V}\n    method: GET\n    uri: https://api.airtable.com/v0/appX/Orders\n",
        "t9_airtable",
        True,
    ),
    (
        "scripts/bench.sh",
        '#!/bin/sh\ncurl -sS https://api.groq.com/openai/v1/chat/completions \\\n  -H "Authorization: Bearer {V}" \\\n'
        "  -H 'Content-Type: application/json' \\\n  -d @prompt.json\n",
        "t9_groq",
        True,
    ),
    (
        "scripts/release.sh",
        "netlify deploy --prod \\\n  --site 6c1d2e3f \\\n  --auth {V} \\\n  --dir dist\n",
        "t9_netlify",
        True,
    ),
    (
        "tests/fixtures/recorded/okta.json",
        '{\n  "request": {\n    "method": "GET",\n    "url": "https://corp.okta.com/api/v1/users",\n'
        '    "headers": {"Authorization": ["SSWS {V}"]}\n  }\n}\n',
        "t9_okta",
        True,
    ),
    # ---- PowerShell, SQL, Perl, shell ------------------------------------------------------------------------------
    (
        "deploy/Install-Service.ps1",
        '$secpass = ConvertTo-SecureString "{V}" -AsPlainText -Force\n'
        "$cred = New-Object System.Management.Automation.PSCredential ('CORP\\svc-relay', $secpass)\n",
        "password",
        True,
    ),
    (
        "db/migrations/0007_reporting_user.sql",
        "CREATE ROLE reporting LOGIN PASSWORD '{V}';\nGRANT SELECT ON ALL TABLES IN SCHEMA public TO reporting;\n",
        "password",
        True,
    ),
    (
        "db/seeds/api_clients.sql",
        "INSERT INTO api_clients (name, client_id, client_secret) VALUES\n"
        "  ('warehouse', 'wh-01', '{V}'),\n  ('pricing', 'pr-01', '{V2}');\n",
        "api_key",
        True,
    ),
    (
        "bin/nightly_export.pl",
        "use DBI;\nmy $dbh = DBI->connect('dbi:Pg:dbname=ledger;host=10.1.2.3', 'ledgerd', '{V}', { RaiseError => 1 });\n",
        "password",
        True,
    ),
    # ---- containers and k8s -------------------------------------------------------------------------------------------
    (
        "charts/shop/values-prod.yaml",
        "postgresql:\n  auth:\n    username: shop\n    password: {V}\n    postgresPassword: {V2}\n",
        "password",
        True,
    ),
    (
        "k8s/secrets/db.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\ndata:\n  password: {V}\n",
        "b64_password",
        True,
    ),
    (
        "docker/Dockerfile",
        "FROM python:3.12-slim\nENV DD_API_KEY={V} \\\n    DD_SITE=datadoghq.eu\nCOPY . /app\n",
        "hex32",
        True,
    ),
    (
        "docker-compose.override.yml",
        "services:\n  db:\n    image: mariadb:11\n    environment:\n      MARIADB_ROOT_PASSWORD: {V}\n",
        "password",
        True,
    ),
    (
        "ops/kubeconfig-ci",
        "apiVersion: v1\nkind: Config\nusers:\n- name: ci\n  user:\n    client-certificate-data: (see ci.crt)\n"
        "    client-key-data: {V}\n",
        "b64_pem",
        True,
    ),
    (
        "ci/docker/config.json",
        '{\n  "auths": {\n    "registry.corp.internal": {\n      "auth": "{V}"\n    }\n  }\n}\n',
        "basic",
        True,
    ),
    # ---- dotfiles and keys -----------------------------------------------------------------------------------------------
    (
        "home/.netrc",
        "machine api.heroku.com\n  login ops@corp.io\n  password {V}\nmachine git.heroku.com\n  login ops@corp.io\n  password {V}\n",
        "heroku",
        True,
    ),
    (
        "frontend/.npmrc",
        "@fulfil:registry=https://npm.pkg.github.com\n//npm.pkg.github.com/:_authToken={V}\n",
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
        ".cargo/credentials.toml",
        '[registry]\ntoken = "{V}"\n',
        "crates_io",
        True,
    ),
    (
        "tests/certs/bundle.pem",
        "# server, client and intermediate signing keys for the mTLS tests\n{V}\n{V2}\n{V3}\n",
        "t9_pem",
        True,
    ),
    (
        "roles/bastion/files/id_ed25519",
        "{V}\n",
        "openssh_key",
        True,
    ),
    (
        "keys/deploy.ppk",
        "{V}\n",
        "t9_putty",
        True,
    ),
    (
        "gpg/release-signing.asc",
        "{V}\n",
        "t9_pgp_private",
        True,
    ),
    (
        "vpn/wg0.conf",
        "[Interface]\nAddress = 10.8.0.2/24\nPrivateKey = {V}\n\n[Peer]\nEndpoint = vpn.corp.io:51820\nAllowedIPs = 10.8.0.0/16\n",
        "t9_wireguard",
        True,
    ),
    (
        "config/jwks.json",
        '{\n  "keys": [\n    {\n      "kty": "OKP",\n      "crv": "Ed25519",\n      "kid": "signing-2024",\n'
        '      "d": "{V}",\n      "use": "sig"\n    }\n  ]\n}\n',
        "jwk_d",
        True,
    ),
    (
        "secrets/age/keys.txt",
        "# created: 2024-03-02T10:11:12Z\n{V}\n",
        "age_key",
        True,
    ),
    (
        "config/pubsub-sa.yaml",
        "serviceAccount:\n  type: service_account\n  client_email: relay@corp-prod.iam.gserviceaccount.com\n"
        '  private_key: "{V}"\n',
        "gcp_private_key",
        True,
    ),
    (
        "deploy/storage.env",
        "AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=https;AccountName=fulfilprod;AccountKey={V};EndpointSuffix=core.windows.net\n",
        "azure_key",
        True,
    ),
    # ---- tests with weak passwords, logs, TOML docs ----------------------------------------------------------------
    (
        "tests/test_login.py",
        "def test_login_ok(client):\n    resp = client.post('/login', data={'username': 'puffin', 'password': '{V}'})\n"
        "    assert resp.status_code == 302\n",
        "t9_word",
        True,
    ),
    (
        "logs/worker-2024-05-03.log",
        "2024-05-03T10:12:01Z INFO  starting export\n2024-05-03T10:12:02Z DEBUG using github token={V} for mirror\n"
        "2024-05-03T10:12:04Z INFO  done\n",
        "github_oauth",
        True,
    ),
    (
        "docs/config.toml",
        '# sample config used by the staging box\n[upstream]\nurl = "https://api.fulfil.io"\nkey = "{V}"\n',
        "api_key",
        True,
    ),
    (
        "prisma/.env",
        'DATABASE_URL="mysql://8x2kq9w1:{V}@aws.connect.psdb.cloud/shop?sslaccept=strict"\n',
        "t9_planetscale",
        True,
    ),
    # ======== look-alikes ========================================================================
    (
        "android/gradle.properties",
        "RELEASE_STORE_FILE=release.jks\nRELEASE_STORE_PASSWORD={V}\nRELEASE_KEY_PASSWORD={V2}\n",
        "t9_placeholder",
        False,
    ),
    (
        "ios/App/Info.plist",
        "<dict>\n\t<key>StripeSecretKey</key>\n\t<string>{V}</string>\n\t<key>CFBundleShortVersionString</key>\n\t<string>4.2.0</string>\n</dict>\n",
        "t9_xcode_ref",
        False,
    ),
    (
        "lib/src/config.dart",
        "class Config {\n  static const stripeKey = {V};\n}\n",
        "t9_dart_ref",
        False,
    ),
    (
        "android/app/src/main/res/values-cs/strings.xml",
        '<resources>\n    <string name="error_password_short">{V}</string>\n    <string name="password_hint">{V2}</string>\n</resources>\n',
        "t9_i18n",
        False,
    ),
    (
        "docs/airflow.md",
        "Set the connection as an environment variable:\n\n```\nAIRFLOW_CONN_WAREHOUSE='postgres://etl:{V}@warehouse.example.com:5432/analytics'\n```\n",
        "t9_word",
        False,
    ),
    (
        "dbt/profiles.yml",
        "analytics:\n  outputs:\n    prod:\n      type: snowflake\n      user: LOADER\n      password: {V}\n",
        "t9_jinja_ref",
        False,
    ),
    (
        "chef/data_bags/credentials/db.json",
        '{\n  "id": "db",\n  "password": {\n    "encrypted_data": "{V}",\n    "iv": "{V2}",\n    "version": 3,\n    "cipher": "aes-256-gcm"\n  }\n}\n',
        "t9_chef_enc",
        False,
    ),
    (
        "hieradata/production.eyaml",
        "---\nprofile::postgres::replication_password: >\n    {V}\n",
        "t9_eyaml",
        False,
    ),
    (
        "grafana/grafana.ini",
        "[security]\nadmin_user = admin\nadmin_password = {V}\nsecret_key = {V2}\n",
        "t9_grafana_ref",
        False,
    ),
    (
        "traefik/dynamic/auth.yml",
        'http:\n  middlewares:\n    admin-auth:\n      basicAuth:\n        users:\n          - "admin:{V}"\n          - "ops:{V2}"\n',
        "apr1",
        False,
    ),
    (
        "nginx/conf.d/pins.conf",
        'add_header Public-Key-Pins \'pin-sha256="{V}"; pin-sha256="{V2}"; max-age=5184000\';\n',
        "t9_pin",
        False,
    ),
    (
        "haproxy/haproxy.cfg",
        "listen stats\n    bind :8404\n    stats enable\n    stats auth admin:{V}\n",
        "t9_env_ref",
        False,
    ),
    (
        "db/dump/users.sql",
        "CREATE USER 'relay'@'%' IDENTIFIED WITH mysql_native_password AS '{V}';\n"
        "CREATE USER 'geoip'@'%' IDENTIFIED WITH mysql_native_password AS '{V2}';\n",
        "t9_mysql_hash",
        False,
    ),
    (
        "docs/pgpass.md",
        "Example `~/.pgpass` line:\n\n    db.example.com:5432:*:app:{V}\n",
        "t9_word",
        False,
    ),
    (
        "rabbitmq/definitions.json",
        '{\n  "users": [\n    {\n      "name": "relay",\n      "password_hash": "{V}",\n'
        '      "hashing_algorithm": "rabbit_password_hashing_sha256",\n      "tags": ""\n    }\n  ]\n}\n',
        "t9_rabbit_hash",
        False,
    ),
    (
        "nats/accounts.conf",
        "accounts {\n  PRICING {\n    users = [\n      {nkey: {V}}\n      {nkey: {V2}}\n    ]\n  }\n}\n",
        "nkey_public",
        False,
    ),
    (
        "docs/messaging.md",
        "Local brokers for the examples:\n\n- `amqp://guest:{V}@rabbit.test:5672/`\n- `nats://pricing:{V2}@nats.invalid:4222`\n",
        "t9_word",
        False,
    ),
    (
        "web/src/checkout.ts",
        "const stripe = await loadStripe('{V}');\n",
        "stripe_pk",
        False,
    ),
    (
        "web/src/auth/google.ts",
        "export const GOOGLE_CLIENT_ID = '{V}';\n",
        "google_client_id",
        False,
    ),
    (
        "docs/aws.md",
        "Configure the CLI (values from the AWS documentation):\n\n```ini\n[default]\naws_access_key_id = {V}\n```\n",
        "t9_aws_example",
        False,
    ),
    (
        "infra/Pulumi.prod.yaml",
        "config:\n  shop:dbPassword:\n    secure: {V}\n",
        "t9_pulumi_secure",
        False,
    ),
    (
        ".drone.yml",
        "steps:\n  - name: docker\n    settings:\n      password:\n        from_secret: {V}\n",
        "secret_name",
        False,
    ),
    (
        ".teamcity/settings.kts",
        'params {\n    password("env.SONAR_TOKEN", "{V}")\n}\n',
        "t9_teamcity_ref",
        False,
    ),
    (
        ".travis.yml",
        'env:\n  global:\n    - secure: "{V}"\n',
        "t9_travis_secure",
        False,
    ),
    (
        "shop/settings/production.py",
        "EMAIL_HOST = 'smtp.sendgrid.net'\nEMAIL_HOST_PASSWORD = {V}\n",
        "env_ref",
        False,
    ),
    (
        "src/main/resources/application.yml",
        "spring:\n  mail:\n    host: smtp.corp.io\n    password: {V}\n",
        "tune7_spring_ref",
        False,
    ),
    (
        "deploy/Set-Secrets.ps1",
        "$clientSecret = {V}\n",
        "tune7_ps_ref",
        False,
    ),
    (
        "config/database.php",
        "'password' => {V},\n",
        "tune6_php_ref",
        False,
    ),
    (
        "docs/api.md",
        '## Authentication\n\n```\ncurl https://api.fulfil.io/v1/orders \\\n  -H "Authorization: Bearer {V}"\n```\n',
        "tune7_doc_placeholder",
        False,
    ),
    (
        "config/app.conf.tmpl",
        "[database]\nuser = shop\npassword = {V}\n\n[smtp]\npassword = {V2}\n",
        "t9_placeholder",
        False,
    ),
    (
        "config/example.yaml",
        'api:\n  key: "{V}"\n  secret: "{V2}"\n',
        "t9_xrun",
        False,
    ),
    (
        "logs/access-2024-05-03.log",
        '10.0.3.4 - - [03/May/2024:10:12:01 +0000] "GET /v1/orders HTTP/1.1" 200 512 request_id={V}\n'
        '10.0.3.9 - - [03/May/2024:10:12:02 +0000] "POST /login HTTP/1.1" 302 0 request_id={V2}\n',
        "request_id",
        False,
    ),
    (
        "tests/cassettes/test_trace.yaml",
        "    headers:\n      X-Trace-Id:\n      - {V}\n      X-Correlation-Id:\n      - {V2}\n",
        "request_id",
        False,
    ),
    (
        "db/seeds/users.sql",
        "INSERT INTO users (email, password_digest) VALUES\n  ('puffin@fulfil.io', '{V}'),\n  ('wombat@fulfil.io', '{V2}');\n",
        "bcrypt",
        False,
    ),
    (
        "dist/SHA256SUMS",
        "{V}  fulfil-cli_linux_amd64.tar.gz\n{V2}  fulfil-cli_darwin_arm64.tar.gz\n",
        "digest",
        False,
    ),
    (
        "payments/stripe_client.py",
        'stripe.api_version = "{V}"\n',
        "tune7_version",
        False,
    ),
    (
        "web/src/styles/logo.css",
        '.logo {\n  background-image: url("data:image/png;base64,{V}");\n}\n',
        "png_b64",
        False,
    ),
    (
        "web/src/styles/fonts.css",
        "@font-face {\n  font-family: 'Inter';\n  src: url(data:font/woff2;base64,{V}) format('woff2');\n}\n",
        "t9_woff",
        False,
    ),
    (
        "k8s/tls.yaml",
        "apiVersion: v1\nkind: Secret\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {V}\n",
        "b64_cert",
        False,
    ),
    (
        "config/jwt/public.pem",
        "{V}\n",
        "public_pem",
        False,
    ),
    (
        "cloud-init/user-data.yaml",
        "#cloud-config\nusers:\n  - name: deploy\n    ssh_authorized_keys:\n      - {V}\n",
        "ssh_public",
        False,
    ),
    (
        "certs/server.key.enc",
        "{V}\n",
        "encrypted_key",
        False,
    ),
    (
        "tests/certs/legacy.key",
        "{V}\n",
        "legacy_encrypted_key",
        False,
    ),
    (
        "keys/release-signing.pub.asc",
        "{V}\n",
        "pgp_public",
        False,
    ),
    (
        "config/jwks.json",
        '{\n  "keys": [\n    {\n      "kty": "RSA",\n      "kid": "2024-01",\n      "e": "AQAB",\n      "n": "{V}"\n    }\n  ]\n}\n',
        "rsa_n",
        False,
    ),
    (
        "web/public/locales/fi/auth.json",
        '{\n  "PASSWORD_INVALID": "{V}",\n  "PASSWORDS_NOT_MATCHING": "{V2}"\n}\n',
        "t9_i18n",
        False,
    ),
    (
        "locale/hu/LC_MESSAGES/django.po",
        'msgid "Password is incorrect"\nmsgstr "{V}"\n',
        "t9_i18n",
        False,
    ),
    (
        "config/locales/en.yml",
        'en:\n  auth:\n    api_key_label: "{V}"\n    password_help: "{V2}"\n',
        "t9_ui_label",
        False,
    ),
    (
        "app/errors.py",
        'AUTH_ERRORS = {\n    "PASSWORD_EXPIRED": "{V}",\n    "TOKEN_REVOKED": "{V2}",\n}\n',
        "error_code",
        False,
    ),
    (
        "config/templates/app.ini",
        "[db]\npassword = {V}\n[mail]\npassword = {V2}\n",
        "hash_marker",
        False,
    ),
    (
        "config/transit.yaml",
        'db:\n  password_ciphertext: "{V}"\n',
        "t9_vault_ct",
        False,
    ),
    (
        "src/main/resources/application-prod.properties",
        "spring.datasource.password={V}\n",
        "t9_jasypt",
        False,
    ),
    (
        "k8s/sealed/db.yaml",
        "kind: SealedSecret\nspec:\n  encryptedData:\n    password: {V}\n",
        "sealed",
        False,
    ),
    (
        "templates/base.html",
        '<script nonce="{V}" src="/static/app.js"></script>\n',
        "csp_nonce",
        False,
    ),
    (
        "tests/test_tokens.py",
        'def test_rejects_bad_checksum():\n    assert not is_valid_github_token("{V}")\n',
        "bad_github",
        False,
    ),
    (
        "docs/redis.md",
        "Point the worker at `redis://:{V}@cache.example.org:6379/0` when following this guide.\n",
        "t9_word",
        False,
    ),
    (
        ".sops.yaml",
        "creation_rules:\n  - path_regex: secrets/.*\n    age: {V}\n",
        "age_public",
        False,
    ),
    (
        "src/notify/config.ts",
        "export const TWILIO_ACCOUNT_SID = '{V}';\nexport const TWILIO_AUTH_TOKEN = process.env.TWILIO_AUTH_TOKEN;\n",
        "t9_twilio_sid",
        False,
    ),
    (
        "docker-compose.yml",
        "services:\n  db:\n    environment:\n      POSTGRES_PASSWORD: {V}\n",
        "t9_env_ref",
        False,
    ),
    (
        "infra/keyvault.env",
        "DB_PASSWORD={V}\n",
        "op_ref",
        False,
    ),
]

#: ``evalset.build`` makes this part's values with this class.
VALUES = Tune9Values
