"""The tenth tuning part of the evaluation corpus, written blind.

Its author read only ``evalset.py`` (the builder and the base value generators) and
``evalscore.py`` (how labels are scored): never the scanner, its rules, its tests or the
other parts' templates. The templates follow what real repositories leak, and what looks
like a leak but is not, with weight on less common shapes: mobile build files, data
tooling, config management, observability, proxies, database config files, messaging,
SaaS SDK init code, IaC, less common CI systems, mail settings and prose. A positive is a
concrete value that would grant access if live (weak test passwords included); anything
else is a negative. Several slots (``{V}``, ``{V2}``, ...) make several labels.
"""

from __future__ import annotations

import base64
import hashlib
import string
import uuid

import evalset
from evalset import ALNUM, Template

HEX = "0123456789abcdef"
LOWER_DIGITS = string.ascii_lowercase + string.digits

#: ``evalset.build`` fills every ``{V}``/``{V2}``/``{IV}`` slot with its own value.
MULTI_SLOT = True


class Tune10Values(evalset.Values):
    """Value generators of the tenth tuning part: its own words and service users, and
    ``t10_`` generators for shapes the base class does not make."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "pumpernickel",
            "zeppelin",
            "marmalade",
            "quokka",
            "sycamore",
            "trombone",
            "kumquat",
            "ptarmigan",
            "bergamot",
        ]
        self.users = [
            "dunning",
            "geoindex",
            "payroll",
            "thumbnailer",
            "kiosk",
            "ratelimiter",
            "fulfilment",
            "ledgerbot",
        ]

    # -- positives ----------------------------------------------------------------------
    def t10_password(self) -> str:
        shape = self.rng.randrange(5)
        if shape == 0:
            return self.password()
        if shape == 1:
            return self.passphrase()
        if shape == 2:
            return self.leet_password()
        if shape == 3:
            return self.pick(self.words).capitalize() + "_" + self.s(4, string.digits) + "?"
        return self.s(self.rng.randrange(14, 24), ALNUM + "-_.~")

    def t10_url_password(self) -> str:
        """A password that needs no percent-encoding in a URI."""
        if self.rng.randrange(2):
            return self.pick(self.words) + self.s(5, string.digits)
        return self.s(self.rng.randrange(12, 22))

    def t10_weak(self) -> str:
        return self.pick(self.words) + self.pick(["", "1", "12", "2024", "!", "99"])

    def t10_user_pass(self) -> str:
        return f"{self.pick(self.users)}:{self.t10_url_password()}"

    def t10_basic(self) -> str:
        return base64.b64encode(self.t10_user_pass().encode()).decode()

    def t10_token40(self) -> str:
        return self.s(40, ALNUM + "-_")

    def t10_hex40(self) -> str:
        return self.s(40, HEX)

    def t10_b64_32(self) -> str:
        return base64.b64encode(self.rng.randbytes(32)).decode()

    def t10_b64_48(self) -> str:
        return base64.b64encode(self.rng.randbytes(48)).decode()

    def t10_private_key(self) -> str:
        label = self.pick(
            ["RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY", "OPENSSH PRIVATE KEY"]
        )
        return self.pem(label, self.rng.randrange(4, 14))

    def t10_escaped_key(self) -> str:
        return self.pem("PRIVATE KEY", 14).replace("\n", "\\n")

    def t10_user_seed(self) -> str:
        return self.nkey()

    def t10_saas(self) -> str:
        """A token of a SaaS format with a fixed prefix."""
        return self.pick(
            [
                "pul-" + self.s(40, HEX),
                "dckr_pat_" + self.s(27, ALNUM + "_-"),
                "rubygems_" + self.s(48, HEX),
                "lin_api_" + self.s(40, LOWER_DIGITS),
                "pnu_" + self.s(36, LOWER_DIGITS),
                "shippo_live_" + self.s(40, HEX),
                "pscale_pw_" + self.s(43, ALNUM + "_"),
                "EZAK" + self.s(54, LOWER_DIGITS),
                "dp.st.prd." + self.s(43, LOWER_DIGITS),
                "glrt-" + self.s(20, ALNUM + "_-"),
                "xapp-1-A"
                + self.s(10, string.ascii_uppercase + string.digits)
                + "-"
                + self.s(13, string.digits)
                + "-"
                + self.s(64, HEX),
                "shpss_" + self.s(32, HEX),
                "rdme_" + self.s(70, LOWER_DIGITS),
            ]
        )

    def t10_github_any(self) -> str:
        return self.github(self.pick(["ghp", "gho", "ghu", "ghs", "ghr"]))

    def t10_airflow_conn(self) -> str:
        scheme = self.pick(["postgres", "mysql", "redis", "amqp"])
        return f"{scheme}://{self.t10_user_pass()}@{self.pick(['warehouse-db', 'mq-01.internal', '10.20.4.17'])}:5432/{self.pick(['dwh', 'jobs', '0'])}"

    def t10_mnemonic(self) -> str:
        bip = [
            "abandon", "ability", "able", "about", "above", "absent", "absorb", "abstract",
            "absurd", "abuse", "access", "accident", "account", "accuse", "achieve", "acid",
            "acoustic", "acquire", "across", "act", "action", "actor", "actress", "actual",
            "adapt", "add", "addict", "address", "adjust", "admit", "adult", "advance",
        ]  # fmt: skip
        return " ".join(self.pick(bip) for _ in range(12))

    # -- negatives ----------------------------------------------------------------------
    def t10_placeholder(self) -> str:
        return self.pick(
            [
                "<paste-your-key-here>",
                "${KAFKA_SASL_PASSWORD}",
                "{{ secrets.smtp_password }}",
                "###SMTP_PASSWORD###",
                "xxxxxxxxxxxxxxxxxxxx",
                "******************",
                "<%= @db_password %>",
                "${env.SONAR_TOKEN}",
                "{{ pillar['db']['password'] }}",
                "%{hiera('mysql::root_password')}",
                "$(DOCKER_PASSWORD)",
                "@@PASSWORD@@",
            ]
        )

    def t10_ref(self) -> str:
        return self.pick(
            [
                "vault:secret/data/payments#api_key",
                "op://Shared/Grafana/credential",
                "sm://projects/acme/secrets/smtp/versions/latest",
                "arn:aws:ssm:eu-central-1:123456789012:parameter/prod/db/password",
                "azurekeyvault://kv-prod/secrets/sendgrid",
                "secretref+file:///run/secrets/kafka",
            ]
        )

    def t10_trace_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def t10_sha256(self) -> str:
        return hashlib.sha256(self.rng.randbytes(24)).hexdigest()

    def t10_sha1(self) -> str:
        return hashlib.sha1(self.rng.randbytes(24)).hexdigest()

    def t10_md5(self) -> str:
        return hashlib.md5(self.rng.randbytes(24)).hexdigest()

    def t10_version(self) -> str:
        return (
            f"{self.rng.randrange(1, 30)}.{self.rng.randrange(0, 40)}.{self.rng.randrange(0, 200)}"
        )

    def t10_font_b64(self) -> str:
        return base64.b64encode(b"wOF2\x00\x01\x00\x00" + self.rng.randbytes(120)).decode()

    def t10_gif_b64(self) -> str:
        return base64.b64encode(b"GIF89a" + self.rng.randbytes(60)).decode()

    def t10_i18n(self) -> str:
        return self.pick(
            [
                "Geslo mora vsebovati vsaj 10 znakov",
                "Salasana on liian lyhyt",
                "Адгаданы пароль няправільны",
                "პაროლი არასწორია",
                "গোপন শব্দটি ভুল",
                "Նշված գաղտնաբառը սխալ է",
                "密碼必須至少包含八個字元",
                "Kata sandi tidak cocok",
            ]
        )

    def t10_aws_doc(self) -> str:
        return self.pick(
            [
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
            ]
        )

    def t10_doc_password(self) -> str:
        return self.pick(["s3cr3t", "hunter2", "P@ssw0rd", "mypassword", "secret"])

    def t10_recaptcha_site(self) -> str:
        return "6L" + self.s(1, "cdefe") + self.s(37, ALNUM + "_-")

    def t10_vapid_public(self) -> str:
        raw = b"\x04" + self.rng.randbytes(64)
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def t10_ssh_fpr(self) -> str:
        return "SHA256:" + base64.b64encode(self.rng.randbytes(32)).decode().rstrip("=")

    def t10_x509_b64(self) -> str:
        return "MII" + base64.b64encode(self.rng.randbytes(600)).decode()

    def t10_password_policy(self) -> str:
        return self.pick(["12", "true", "false", "bcrypt", "argon2id", "90d", "3"])

    def t10_rfc_vector(self) -> str:
        return self.pick(
            [
                "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
                "4a656665",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "000102030405060708090a0b0c0d0e0f",
            ]
        )

    def t10_integrity(self) -> str:
        return "sha512-" + base64.b64encode(self.rng.randbytes(64)).decode()

    def t10_image_digest(self) -> str:
        return "sha256:" + self.hex64()

    def t10_lock_hash(self) -> str:
        return self.pick(["h1:", "zh:"]) + (
            base64.b64encode(self.rng.randbytes(32)).decode()
            if self.rng.randrange(2)
            else self.hex64()
        )

    def t10_gocspx(self) -> str:
        return "GOCSPX-" + self.s(28, ALNUM + "_-")

    def t10_dbt_ref(self) -> str:
        return self.pick(
            [
                "{{ env_var('DBT_PASSWORD') }}",
                "{{ env_var('SNOWFLAKE_PASSWORD') }}",
                "{{ var('warehouse_password') }}",
            ]
        )

    def t10_grafana_ref(self) -> str:
        return self.pick(
            [
                "$__env{GF_SECURITY_ADMIN_PASSWORD}",
                "$__file{/run/secrets/grafana_admin}",
                "$__vault{kv/data/grafana:admin_password}",
            ]
        )

    def t10_kafka_ref(self) -> str:
        return self.pick(
            [
                "${file:/opt/kafka/config/secrets.properties:sasl.password}",
                "${env:KAFKA_SASL_PASSWORD}",
                "${vault:secret/kafka:password}",
            ]
        )

    def t10_pgp_message(self) -> str:
        body = base64.b64encode(self.rng.randbytes(48 * 6)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        check = base64.b64encode(self.rng.randbytes(3)).decode()
        return (
            "-----BEGIN PGP MESSAGE-----\n\n"
            + "\n".join(rows)
            + f"\n={check}\n-----END PGP MESSAGE-----"
        )

    def t10_rabbit_hash(self) -> str:
        return base64.b64encode(self.rng.randbytes(36)).decode()

    def t10_travis_secure(self) -> str:
        return base64.b64encode(self.rng.randbytes(256)).decode()

    def t10_account_id(self) -> str:
        return self.s(12, string.digits)

    def t10_hocon_ref(self) -> str:
        return self.pick(["${?DB_PASSWORD}", "${app.secrets.db}", "${?SMTP_PASS}"])

    def t10_vaulted(self) -> str:
        return self.pick([self.ansible_vault(), self.t10_pgp_message()])


#: Credentials (positive) first, then look-alikes (negative).
TEMPLATES: list[Template] = [
    # -- mobile ---------------------------------------------------------------------------
    (
        "android/gradle.properties",
        "org.gradle.jvmargs=-Xmx4g\nandroid.useAndroidX=true\nRELEASE_STORE_FILE=release.jks\nRELEASE_STORE_PASSWORD={V}\nRELEASE_KEY_ALIAS=upload\nRELEASE_KEY_PASSWORD={V2}\n",
        "t10_password",
        True,
    ),
    (
        "ios/Runner/Info.plist",
        '<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0">\n<dict>\n\t<key>CFBundleName</key>\n\t<string>Kiosk</string>\n\t<key>StripeSecretKey</key>\n\t<string>{V}</string>\n</dict>\n</plist>\n',
        "stripe",
        True,
    ),
    (
        "lib/config/keys.dart",
        "// Generated by hand, do not commit (oops)\nclass Keys {\n  static const String openAiKey = '{V}';\n  static const int timeoutSeconds = 30;\n}\n",
        "openai",
        True,
    ),
    (
        "lib/main.dart",
        "Future<void> main() async {\n  await Supabase.initialize(\n    url: 'https://qzkwhrtyxvbn.supabase.co',\n    anonKey: const String.fromEnvironment('SUPABASE_ANON'),\n    serviceRoleKey: '{V}',\n  );\n  runApp(const App());\n}\n",
        "jwt",
        True,
    ),
    (
        "app/src/main/java/com/acme/kiosk/ApiModule.kt",
        'object ApiModule {\n    private const val BASE = "https://api.kiosk.internal/"\n    fun client(): OkHttpClient = OkHttpClient.Builder()\n        .addInterceptor { chain ->\n            chain.proceed(chain.request().newBuilder()\n                .addHeader("X-Api-Key", "{V}")\n                .build())\n        }.build()\n}\n',
        "api_key",
        True,
    ),
    (
        "ios/Kiosk/Networking/Client.swift",
        'import Foundation\n\nfunc makeRequest(_ url: URL) -> URLRequest {\n    var request = URLRequest(url: url)\n    request.setValue("Bearer {V}", forHTTPHeaderField: "Authorization")\n    return request\n}\n',
        "t10_token40",
        True,
    ),
    (
        "app/build.gradle.kts",
        'repositories {\n    maven {\n        url = uri("https://maven.pkg.corp.internal/releases")\n        credentials {\n            username = "kiosk-ci"\n            password = "{V}"\n        }\n    }\n}\n',
        "t10_password",
        True,
    ),
    # -- data tooling ---------------------------------------------------------------------
    (
        "airflow/.env",
        "AIRFLOW__CORE__EXECUTOR=CeleryExecutor\nAIRFLOW_CONN_WAREHOUSE='{V}'\nAIRFLOW__WEBSERVER__EXPOSE_CONFIG=False\n",
        "t10_airflow_conn",
        True,
    ),
    (
        "dbt/profiles.yml",
        'analytics:\n  target: prod\n  outputs:\n    prod:\n      type: postgres\n      host: dwh.corp.internal\n      user: dbt_runner\n      password: "{V}"\n      port: 5432\n      dbname: analytics\n      schema: marts\n',
        "t10_password",
        True,
    ),
    (
        "conf/spark-defaults.conf",
        "spark.master                     yarn\nspark.hadoop.fs.s3a.aws.credentials.provider org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider\nspark.hadoop.fs.s3a.secret.key   {V}\nspark.sql.shuffle.partitions     200\n",
        "aws_secret",
        True,
    ),
    (
        "notebooks/explore.ipynb",
        '{\n "cells": [\n  {\n   "cell_type": "code",\n   "execution_count": 3,\n   "metadata": {},\n   "outputs": [],\n   "source": [\n    "import openai\\n",\n    "openai.api_key = \\"{V}\\"\\n",\n    "resp = openai.chat.completions.create(model=\\"gpt-4o\\", messages=msgs)"\n   ]\n  }\n ],\n "nbformat": 4,\n "nbformat_minor": 5\n}\n',
        "openai",
        True,
    ),
    (
        "notebooks/load.ipynb",
        '{\n "cells": [\n  {\n   "cell_type": "code",\n   "source": [\n    "engine = create_engine(\\"snowflake://loader:{V}@acme-xy12345/RAW\\")\\n"\n   ]\n  }\n ],\n "nbformat": 4\n}\n',
        "t10_url_password",
        True,
    ),
    # -- config management ----------------------------------------------------------------
    (
        "salt/pillar/mysql.sls",
        "mysql:\n  server:\n    root_user: root\n    root_password: '{V}'\n    bind_address: 0.0.0.0\n",
        "t10_password",
        True,
    ),
    (
        "chef/data_bags/credentials/smtp.json",
        '{\n  "id": "smtp",\n  "host": "smtp.sendgrid.net",\n  "username": "apikey",\n  "password": "{V}"\n}\n',
        "sendgrid",
        True,
    ),
    (
        "hieradata/common.yaml",
        "---\nprofile::postgres::listen: '*'\nprofile::postgres::app_password: '{V}'\nprofile::nginx::workers: 4\n",
        "t10_password",
        True,
    ),
    (
        "ansible/inventory/prod.ini",
        "[db]\ndb01 ansible_host=10.12.0.5 ansible_user=deploy ansible_password={V}\ndb02 ansible_host=10.12.0.6 ansible_user=deploy ansible_password={V2}\n",
        "t10_password",
        True,
    ),
    # -- observability --------------------------------------------------------------------
    (
        "grafana/grafana.ini",
        "[server]\nhttp_port = 3000\n\n[security]\nadmin_user = admin\nadmin_password = {V}\nsecret_key = {V2}\n",
        "t10_password",
        True,
    ),
    (
        "prometheus/prometheus.yml",
        "scrape_configs:\n  - job_name: pushgateway\n    basic_auth:\n      username: scraper\n      password: '{V}'\n    static_configs:\n      - targets: ['pushgw:9091']\n",
        "t10_password",
        True,
    ),
    (
        "alertmanager/alertmanager.yml",
        "global:\n  resolve_timeout: 5m\n  slack_api_url: '{V}'\nroute:\n  receiver: team\n",
        "slack_webhook",
        True,
    ),
    (
        "alertmanager/receivers.yml",
        "receivers:\n  - name: oncall\n    pagerduty_configs:\n      - routing_key: {V}\n        severity: critical\n",
        "hex32",
        True,
    ),
    # -- web servers and proxies ----------------------------------------------------------
    (
        "nginx/conf.d/upstream.conf",
        'location /internal/ {\n    proxy_pass http://ledger:8080;\n    proxy_set_header Authorization "Basic {V}";\n}\n',
        "t10_basic",
        True,
    ),
    (
        "haproxy/haproxy.cfg",
        "userlist stats_users\n    user admin insecure-password {V}\n\nlisten stats\n    bind *:8404\n    stats enable\n",
        "t10_password",
        True,
    ),
    (
        "traefik/.env",
        "CF_API_EMAIL=ops@corp.internal\nCF_DNS_API_TOKEN={V}\nTRAEFIK_LOG_LEVEL=INFO\n",
        "t10_token40",
        True,
    ),
    (
        "caddy/Caddyfile",
        "shop.corp.internal {\n    tls {\n        dns cloudflare {V}\n    }\n    reverse_proxy app:3000\n}\n",
        "t10_token40",
        True,
    ),
    # -- databases' own config ------------------------------------------------------------
    (
        "docker/mysql/my.cnf",
        "[client]\nuser=backup\npassword={V}\nhost=127.0.0.1\n\n[mysqld]\nmax_connections=300\n",
        "t10_password",
        True,
    ),
    (
        "redis/redis.conf",
        "bind 0.0.0.0\nport 6379\nrequirepass {V}\nmasterauth {V2}\nappendonly yes\n",
        "t10_password",
        True,
    ),
    (
        "ops/.pgpass",
        "dwh.corp.internal:5432:*:reporting:{V}\nlocalhost:5432:app:app:{V2}\n",
        "t10_url_password",
        True,
    ),
    (
        "config/mongo.js",
        "module.exports = {\n  uri: 'mongodb+srv://geoindex:{V}@cluster0.x7kqp.mongodb.net/geo?retryWrites=true',\n};\n",
        "t10_url_password",
        True,
    ),
    # -- messaging ------------------------------------------------------------------------
    (
        "kafka/kafka_client_jaas.conf",
        'KafkaClient {\n  org.apache.kafka.common.security.plain.PlainLoginModule required\n  username="payroll"\n  password="{V}";\n};\n',
        "t10_password",
        True,
    ),
    (
        "kafka/client.properties",
        'bootstrap.servers=pkc-4r297.eu-west-1.aws.confluent.cloud:9092\nsecurity.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="QW3KXPLM7TZ2RB5N" password="{V}";\n',
        "t10_b64_48",
        True,
    ),
    (
        "rabbitmq/rabbitmq.conf",
        "listeners.tcp.default = 5672\ndefault_user = fulfilment\ndefault_pass = {V}\n",
        "t10_password",
        True,
    ),
    (
        "nats/server.conf",
        'port: 4222\nauthorization {\n  user: ratelimiter\n  password: "{V}"\n  timeout: 2\n}\n',
        "t10_password",
        True,
    ),
    (
        "nats/ledgerbot.creds",
        "-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJzdWIiOiJVQUJDIn0.c2lnbmF0dXJl\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n{V}\n------END USER NKEY SEED------\n",
        "t10_user_seed",
        True,
    ),
    (
        "cmd/worker/nats.go",
        'func connect() (*nats.Conn, error) {\n\tseed := "{V}"\n\tkp, err := nkeys.FromSeed([]byte(seed))\n\tif err != nil {\n\t\treturn nil, err\n\t}\n\treturn nats.Connect(natsURL, nats.Nkey(pub(kp), sign(kp)))\n}\n',
        "t10_user_seed",
        True,
    ),
    (
        "config/nats.exs",
        'config :kiosk, :gnat,\n  host: "nats.corp.internal",\n  nkey_seed: "{V}"\n',
        "nats_account_seed",
        True,
    ),
    # -- payment / SaaS SDK init -----------------------------------------------------------
    (
        "config/initializers/stripe.rb",
        "Stripe.api_key = '{V}'\nStripe.max_network_retries = 2\n",
        "stripe_restricted",
        True,
    ),
    (
        "src/sms.js",
        "const twilio = require('twilio');\nconst client = twilio('AC' + '3f9c1d2e4b5a69788f0e1d2c3b4a5968', '{V}');\nmodule.exports = client;\n",
        "hex32",
        True,
    ),
    (
        "app/Services/Mailer.php",
        "<?php\n\nnamespace App\\Services;\n\nclass Mailer\n{\n    public function client(): \\SendGrid\n    {\n        return new \\SendGrid('{V}');\n    }\n}\n",
        "sendgrid",
        True,
    ),
    (
        "src/main/java/com/acme/pay/Gateway.java",
        'public final class Gateway {\n    static final BraintreeGateway GATEWAY = new BraintreeGateway(\n        Environment.PRODUCTION, "7x9kqwm3hd2p", "r4tz8ycm6nqp3bvw", "{V}");\n}\n',
        "hex32",
        True,
    ),
    (
        "config/services.php",
        "<?php\n\nreturn [\n    'stripe' => [\n        'key' => env('STRIPE_KEY'),\n        'secret' => env('STRIPE_SECRET', '{V}'),\n    ],\n];\n",
        "stripe",
        True,
    ),
    (
        "internal/llm/client.go",
        'package llm\n\nfunc New() *anthropic.Client {\n\treturn anthropic.NewClient(option.WithAPIKey("{V}"))\n}\n',
        "anthropic",
        True,
    ),
    (
        "lib/shop/woo.py",
        'from woocommerce import API\n\nwcapi = API(\n    url="https://shop.corp.internal",\n    consumer_key="ck_{V}",\n    consumer_secret="cs_{V2}",\n    version="wc/v3",\n)\n',
        "t10_hex40",
        True,
    ),
    (
        "client_secret.json",
        '{"installed":{"client_id":"412987331209-9kq2v8m1c4n7b3x5z6l0p8r2t4w6y8a1.apps.googleusercontent.com","project_id":"kiosk-prod","auth_uri":"https://accounts.google.com/o/oauth2/auth","client_secret":"{V}","redirect_uris":["http://localhost"]}}\n',
        "t10_gocspx",
        True,
    ),
    (
        "src/main/scala/Twitter.scala",
        'object TwitterAuth {\n  val consumerKey = "{V}"\n  val consumerSecret = "{V2}"\n}\n',
        "twitter_secret",
        True,
    ),
    (
        "integrations/saas.env",
        "# integrations used by the nightly sync\nSERVICE_TOKEN={V}\nSYNC_INTERVAL=3600\n",
        "t10_saas",
        True,
    ),
    # -- IaC --------------------------------------------------------------------------------
    (
        "infra/Pulumi.prod.yaml",
        "config:\n  aws:region: eu-central-1\n  aws:profile: prod\n  aws:secretKey: {V}\n",
        "aws_secret",
        True,
    ),
    (
        "infra/lib/db-stack.ts",
        "const db = new rds.DatabaseInstance(this, 'Db', {\n  engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_16 }),\n  credentials: rds.Credentials.fromPassword('payroll', SecretValue.unsafePlainText('{V}')),\n  vpc,\n});\n",
        "t10_password",
        True,
    ),
    (
        "infra/main.bicep",
        "param location string = resourceGroup().location\nparam adminLogin string = 'sqladmin'\nparam adminPassword string = '{V}'\n\nresource sql 'Microsoft.Sql/servers@2023-05-01-preview' = {\n  name: 'sql-kiosk'\n  location: location\n}\n",
        "t10_password",
        True,
    ),
    (
        "cloudformation/rds.yaml",
        "Resources:\n  Database:\n    Type: AWS::RDS::DBInstance\n    Properties:\n      Engine: postgres\n      MasterUsername: dunning\n      MasterUserPassword: '{V}'\n      DBInstanceClass: db.t3.medium\n",
        "t10_password",
        True,
    ),
    (
        "terraform/vault.tf",
        'provider "vault" {\n  address = "https://vault.corp.internal:8200"\n  token   = "{V}"\n}\n',
        "vault_token",
        True,
    ),
    # -- CI systems -------------------------------------------------------------------------
    (
        ".drone.yml",
        "kind: pipeline\nname: default\nsteps:\n  - name: publish\n    image: plugins/docker\n    settings:\n      repo: corp/kiosk\n      username: kioskci\n      password: {V}\n",
        "t10_password",
        True,
    ),
    (
        ".buildkite/pipeline.yml",
        'env:\n  BUILDKITE_API_TOKEN: "bkua_{V}"\nsteps:\n  - command: make test\n',
        "t10_hex40",
        True,
    ),
    (
        ".teamcity/settings.kts",
        'object Publish : BuildType({\n    params {\n        param("env.NPM_TOKEN", "{V}")\n    }\n})\n',
        "npm",
        True,
    ),
    (
        ".travis.yml",
        "language: node_js\ndeploy:\n  provider: releases\n  api_key: {V}\n  on:\n    tags: true\n",
        "t10_github_any",
        True,
    ),
    (
        ".gitlab-ci.yml",
        'variables:\n  SONAR_HOST_URL: "https://sonar.corp.internal"\n  SONAR_TOKEN: "squ_{V}"\nsonar:\n  script: sonar-scanner\n',
        "t10_hex40",
        True,
    ),
    (
        ".circleci/config.yml",
        'jobs:\n  push:\n    steps:\n      - run: echo "{V}" | docker login -u kioskci --password-stdin\n',
        "t10_password",
        True,
    ),
    (
        "azure-pipelines.yml",
        "steps:\n  - script: |\n      az login --service-principal -u 0f4c2a7e-1b3d-4e5f-8a9b-0c1d2e3f4a5b -p {V} --tenant 9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d\n",
        "azure_client_secret",
        True,
    ),
    (
        "bitbucket-pipelines.yml",
        "pipelines:\n  default:\n    - step:\n        script:\n          - pipe: atlassian/jira-upload:0.4.0\n            variables:\n              ATLASSIAN_API_TOKEN: '{V}'\n",
        "atlassian",
        True,
    ),
    (
        "Jenkinsfile",
        "pipeline {\n  agent any\n  stages {\n    stage('push') {\n      steps {\n        sh \"docker login -u jenkins -p {V} registry.corp.internal\"\n      }\n    }\n  }\n}\n",
        "t10_password",
        True,
    ),
    # -- mail in many frameworks ---------------------------------------------------------------
    (
        "config/environments/production.rb",
        "config.action_mailer.smtp_settings = {\n  address: 'smtp.mailgun.org',\n  user_name: 'postmaster@mg.corp.internal',\n  password: '{V}',\n  authentication: :plain\n}\n",
        "mailgun",
        True,
    ),
    (
        ".env.prod",
        "MAILER_DSN=smtp://dunning:{V}@smtp.corp.internal:587\nMESSENGER_TRANSPORT_DSN=doctrine://default\n",
        "t10_url_password",
        True,
    ),
    (
        "src/mail.ts",
        "export const transport = nodemailer.createTransport({\n  host: 'email-smtp.eu-west-1.amazonaws.com',\n  auth: { user: 'AKIAV2MP4XQ7LTRN3YHE', pass: '{V}' },\n});\n",
        "t10_b64_32",
        True,
    ),
    (
        "config/runtime.exs",
        'config :kiosk, Kiosk.Mailer,\n  adapter: Swoosh.Adapters.Sendgrid,\n  api_key: "{V}"\n',
        "sendgrid",
        True,
    ),
    # -- prose ---------------------------------------------------------------------------------
    (
        "README.md",
        "## Local setup\n\nCreate `.env` with:\n\n```\nSTRIPE_SECRET_KEY={V}\nAPP_ENV=dev\n```\n",
        "stripe",
        True,
    ),
    (
        "docs/runbooks/db-failover.md",
        "# DB failover\n\n1. Connect: `psql -h dwh-replica.corp.internal -U admin`\n2. Password is `{V}` (rotate after the incident!)\n3. Run `SELECT pg_promote();`\n",
        "t10_password",
        True,
    ),
    (
        "docs/ops/jenkins.rst",
        "Triggering a build\n==================\n\n.. code-block:: bash\n\n   curl -X POST -u deploy:{V} \\\n     https://jenkins.corp.internal/job/kiosk/build\n",
        "t10_url_password",
        True,
    ),
    (
        ".github/ISSUE_TEMPLATE/bug_report.md",
        "---\nname: Bug report\n---\n\n**Config used**\n\n```yaml\nsentry:\n  auth_token: {V}\n```\n",
        "sentry_user",
        True,
    ),
    (
        "docs/api.toml",
        '[client]\nbase_url = "https://api.geoindex.internal"\nAPI_TOKEN="{V}"\n',
        "t10_token40",
        True,
    ),
    # -- headers, curl, cassettes --------------------------------------------------------------
    (
        "scripts/sync.sh",
        'curl -sS https://api.ledger.internal/v2/export \\\n  -H "Authorization: Bearer {V}" \\\n  -o export.json\n',
        "t10_token40",
        True,
    ),
    (
        "internal/client/http.go",
        'func (c *Client) do(req *http.Request) (*http.Response, error) {\n\treq.Header.Set("Authorization", "Basic {V}")\n\treturn c.http.Do(req)\n}\n',
        "t10_basic",
        True,
    ),
    (
        "tools/export.py",
        'import requests\n\nTOKEN = "{V}"\nresp = requests.get(URL, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)\n',
        "t10_token40",
        True,
    ),
    (
        "tests/cassettes/test_invoices.yaml",
        "interactions:\n- request:\n    body: null\n    headers:\n      Accept:\n      - application/json\n      Authorization:\n      - Bearer {V}\n    method: GET\n    uri: https://api.stripe.com/v1/invoices\n",
        "stripe",
        True,
    ),
    (
        "src/Api/Client.cs",
        'public HttpClient Create()\n{\n    var client = new HttpClient();\n    client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "{V}");\n    return client;\n}\n',
        "jwt",
        True,
    ),
    (
        "src/client.rs",
        'pub async fn fetch() -> reqwest::Result<String> {\n    reqwest::Client::new()\n        .get("https://api.linear.app/graphql")\n        .bearer_auth("{V}")\n        .send().await?.text().await\n}\n',
        "t10_saas",
        True,
    ),
    (
        "requests/api.http",
        "### List users\nGET https://api.kiosk.internal/v1/users\nAuthorization: Bearer {V}\nAccept: application/json\n",
        "jwt",
        True,
    ),
    (
        "scripts/run-local.sh",
        "docker run --rm \\\n  -e DATABASE_URL=postgres://app@db/app \\\n  -e API_SECRET={V} \\\n  -p 8080:8080 kiosk:latest\n",
        "t10_b64_32",
        True,
    ),
    # -- languages: connection strings and assignments -----------------------------------------
    (
        "lib/db.pl",
        'use DBI;\nmy $dbh = DBI->connect("dbi:Pg:dbname=ledger;host=db01", "ledger", "{V}", { RaiseError => 1 });\n',
        "t10_password",
        True,
    ),
    (
        "scripts/Deploy.ps1",
        '$user = "corp\\svc-deploy"\n$secure = ConvertTo-SecureString "{V}" -AsPlainText -Force\n$cred = New-Object System.Management.Automation.PSCredential($user, $secure)\n',
        "t10_password",
        True,
    ),
    (
        "db/migrations/0007_reporting_user.sql",
        "CREATE USER reporting WITH PASSWORD '{V}';\nGRANT SELECT ON ALL TABLES IN SCHEMA public TO reporting;\n",
        "t10_password",
        True,
    ),
    (
        "db/seeds/api_clients.sql",
        "INSERT INTO api_clients (name, client_id, client_secret) VALUES\n  ('kiosk', 'kiosk-web', '{V}');\n",
        "t10_token40",
        True,
    ),
    (
        "config/database.yml",
        'production:\n  adapter: postgresql\n  database: kiosk\n  password: <%= ENV.fetch("DB_PASSWORD") { "{V}" } %>\n',
        "t10_password",
        True,
    ),
    (
        "app/settings.py",
        'import os\n\nAPI_KEY = os.getenv("GEOINDEX_API_KEY", "{V}")\n',
        "api_key",
        True,
    ),
    (
        "appsettings.Production.json",
        '{\n  "ConnectionStrings": {\n    "Default": "Server=sql01;Database=Kiosk;User Id=kiosk;Password={V};TrustServerCertificate=True"\n  }\n}\n',
        "t10_password",
        True,
    ),
    (
        "src/db.rs",
        'const DATABASE_URL: &str = "postgres://thumbnailer:{V}@pg.corp.internal/thumbs";\n',
        "t10_url_password",
        True,
    ),
    (
        "src/config/mailgun.toml",
        '[mailgun]\ndomain = "mg.corp.internal"\nkey = "{V}"\n',
        "mailgun",
        True,
    ),
    ("wallet/config.yaml", 'network: mainnet\nseed: "{V}"\n', "t10_mnemonic", True),
    ("deploy/heroku.env", "HEROKU_API_KEY={V}\nHEROKU_APP=kiosk-prod\n", "uuid_key", True),
    (
        "keys/jwks-private.json",
        '{"keys":[{"kty":"EC","crv":"P-256","kid":"sig-2024","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"{V}"}]}\n',
        "jwk_d",
        True,
    ),
    # -- keys and machine config files -------------------------------------------------------------
    ("tests/certs/bundle.pem", "{V}\n{V2}\n{V3}\n", "t10_private_key", True),
    (
        "deploy/helm/values-prod.yaml",
        "ingress:\n  enabled: true\ntls:\n  crt: ''\n  key: |\n    {IV}\n",
        "t10_private_key",
        True,
    ),
    (
        "secrets/firebase-adminsdk.json",
        '{\n  "type": "service_account",\n  "project_id": "kiosk-prod",\n  "private_key_id": "3b1f0c8e2d4a6b9c7e5f1a2b3c4d5e6f7a8b9c0d",\n  "private_key": "{V}\\n",\n  "client_email": "firebase-adminsdk@kiosk-prod.iam.gserviceaccount.com"\n}\n',
        "t10_escaped_key",
        True,
    ),
    (
        "ops/kube/config",
        "apiVersion: v1\nkind: Config\nusers:\n- name: ci\n  user:\n    client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==\n    client-key-data: {V}\n",
        "b64_pem",
        True,
    ),
    (
        ".docker/config.json",
        '{\n  "auths": {\n    "registry.corp.internal": {\n      "auth": "{V}"\n    }\n  }\n}\n',
        "t10_basic",
        True,
    ),
    (
        "home/.netrc",
        "machine api.heroku.com\n  login ops@corp.internal\n  password {V}\n",
        "heroku",
        True,
    ),
    (
        "frontend/.npmrc",
        "@corp:registry=https://npm.pkg.github.com\n//npm.pkg.github.com/:_authToken={V}\n",
        "t10_github_any",
        True,
    ),
    (
        "deploy/k8s/api-secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: api\ndata:\n  api-key: {V}\n",
        "b64_api_key",
        True,
    ),
    (
        "Dockerfile",
        'FROM node:20-alpine\nWORKDIR /app\nENV NPM_TOKEN={V}\nRUN echo "//registry.npmjs.org/:_authToken=${NPM_TOKEN}" > .npmrc && npm ci\n',
        "npm",
        True,
    ),
    (
        "logs/worker-2024-03-02.log",
        "2024-03-02T10:14:55Z INFO  starting sync job=ledger\n2024-03-02T10:14:56Z DEBUG POST /v1/sync headers={'X-Api-Key': '{V}'}\n2024-03-02T10:14:57Z INFO  done\n",
        "t10_saas",
        True,
    ),
    # -- weak test passwords ---------------------------------------------------------------------
    (
        "tests/test_login.py",
        "def test_login(client):\n    resp = client.post('/login', data={'username': 'alice', 'password': '{V}'})\n    assert resp.status_code == 302\n",
        "t10_weak",
        True,
    ),
    (
        "pkg/bus/bus_test.go",
        'func TestPublish(t *testing.T) {\n\tnc, err := nats.Connect("nats://kiosk:{V}@localhost:4222")\n\trequire.NoError(t, err)\n\tdefer nc.Close()\n}\n',
        "t10_weak",
        True,
    ),
    (
        "test/widget_test.dart",
        "void main() {\n  test('signs in', () async {\n    final ok = await auth.signIn('tester@corp.internal', '{V}');\n    expect(ok, isTrue);\n  });\n}\n",
        "t10_weak",
        True,
    ),
    (
        "t/01-login.t",
        "use Test::More;\nmy $ua = Test::Mojo->new('Kiosk');\n$ua->post_ok('/login' => form => { user => 'bob', password => '{V}' })->status_is(302);\ndone_testing;\n",
        "t10_weak",
        True,
    ),
    (
        "src/test/groovy/AuthSpec.groovy",
        'class AuthSpec extends Specification {\n    def "logs in"() {\n        expect:\n        auth.login("admin", "{V}")\n    }\n}\n',
        "t10_weak",
        True,
    ),
    # ===================================== look-alikes =====================================
    # -- mobile ---------------------------------------------------------------------------
    (
        "android/gradle.example.properties",
        "RELEASE_STORE_FILE=release.jks\nRELEASE_STORE_PASSWORD={V}\nRELEASE_KEY_PASSWORD={V2}\n",
        "t10_placeholder",
        False,
    ),
    (
        "ios/Runner/GoogleService-Info.plist",
        '<plist version="1.0">\n<dict>\n\t<key>CLIENT_ID</key>\n\t<string>{V}</string>\n\t<key>BUNDLE_ID</key>\n\t<string>com.corp.kiosk</string>\n</dict>\n</plist>\n',
        "google_client_id",
        False,
    ),
    (
        "lib/l10n/app_fi.arb",
        '{\n  "@@locale": "fi",\n  "passwordTooShort": "{V}",\n  "passwordHint": "{V2}"\n}\n',
        "t10_i18n",
        False,
    ),
    (
        "app/src/main/res/values-sl/strings.xml",
        '<resources>\n    <string name="error_invalid_password">{V}</string>\n</resources>\n',
        "t10_i18n",
        False,
    ),
    (
        "ios/Kiosk/id.lproj/Localizable.strings",
        '"password.mismatch" = "{V}";\n"password.title" = "Kata sandi";\n',
        "t10_i18n",
        False,
    ),
    # -- data tooling ---------------------------------------------------------------------
    (
        "dbt/profiles.yml",
        'analytics:\n  target: prod\n  outputs:\n    prod:\n      type: snowflake\n      account: acme-xy12345\n      user: dbt_runner\n      password: "{V}"\n',
        "t10_dbt_ref",
        False,
    ),
    (
        "conf/spark-defaults.conf",
        "spark.authenticate true\nspark.authenticate.secret.file {V}\nspark.network.crypto.enabled true\n",
        "secret_path",
        False,
    ),
    (
        "notebooks/checksums.ipynb",
        '{\n "cells": [\n  {\n   "cell_type": "code",\n   "outputs": [\n    {"name": "stdout", "output_type": "stream", "text": ["md5 of train.parquet: {V}\\n"]}\n   ],\n   "source": ["hashlib.md5(open(p, \\"rb\\").read()).hexdigest()"]\n  }\n ]\n}\n',
        "t10_md5",
        False,
    ),
    # -- config management ----------------------------------------------------------------
    (
        "salt/pillar/mysql.sls",
        "#!yaml|gpg\nmysql:\n  server:\n    root_password: |\n      {IV}\n",
        "t10_pgp_message",
        False,
    ),
    (
        "chef/data_bags/credentials/db.json",
        '{\n  "id": "db",\n  "password": {\n    "encrypted_data": "{V}",\n    "iv": "q83JMHTjG8dxo3Hd\\n",\n    "version": 3,\n    "cipher": "aes-256-gcm"\n  }\n}\n',
        "t10_b64_48",
        False,
    ),
    (
        "hieradata/secure.eyaml",
        "---\nprofile::postgres::app_password: >\n  ENC[PKCS7,{V}]\n",
        "t10_x509_b64",
        False,
    ),
    (
        "ansible/group_vars/vault.yml",
        "---\nvault_mysql_root_password: !vault |\n  {IV}\n",
        "ansible_vault",
        False,
    ),
    # -- observability --------------------------------------------------------------------
    (
        "grafana/grafana.ini",
        "[security]\nadmin_user = admin\nadmin_password = {V}\ndisable_gravatar = true\n",
        "t10_grafana_ref",
        False,
    ),
    (
        "prometheus/prometheus.yml",
        "scrape_configs:\n  - job_name: node\n    basic_auth:\n      username: scraper\n      password_file: {V}\n",
        "secret_path",
        False,
    ),
    ("prometheus/web.yml", "basic_auth_users:\n  admin: {V}\n", "bcrypt", False),
    # -- web servers and proxies ----------------------------------------------------------
    ("nginx/.htpasswd", "admin:{V}\n", "apr1", False),
    (
        "haproxy/haproxy.cfg",
        "userlist stats_users\n    user admin password {V}\n",
        "sha512crypt",
        False,
    ),
    (
        "traefik/dynamic.yml",
        'http:\n  middlewares:\n    dashboard-auth:\n      basicAuth:\n        users:\n          - "admin:{V}"\n',
        "apr1",
        False,
    ),
    (
        "nginx/conf.d/csp.conf",
        "add_header Content-Security-Policy \"script-src 'self' 'nonce-{V}'\";\n",
        "csp_nonce",
        False,
    ),
    # -- databases' own config ------------------------------------------------------------
    (
        "redis/users.acl",
        "user default off\nuser ratelimiter on #{V} ~rl:* +@all\n",
        "t10_sha256",
        False,
    ),
    ("db/roles.sql", "ALTER ROLE reporting WITH LOGIN PASSWORD '{V}';\n", "scram_verifier", False),
    (
        "mongod.conf",
        "security:\n  authorization: enabled\n  keyFile: {V}\nnet:\n  port: 27017\n",
        "secret_path",
        False,
    ),
    # -- messaging ------------------------------------------------------------------------
    (
        "kafka/client.properties",
        'security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="payroll" password="{V}";\n',
        "t10_kafka_ref",
        False,
    ),
    (
        "rabbitmq/definitions.json",
        '{\n  "users": [\n    {"name": "fulfilment", "password_hash": "{V}", "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ""}\n  ]\n}\n',
        "t10_rabbit_hash",
        False,
    ),
    (
        "nats/accounts.conf",
        "accounts: {\n  KIOSK: {\n    users: [\n      { nkey: {V} }\n    ]\n  }\n}\n",
        "nkey_public",
        False,
    ),
    # -- payment / SaaS SDK init (public keys) ---------------------------------------------
    (
        "src/checkout.ts",
        "import { loadStripe } from '@stripe/stripe-js';\n\nexport const stripePromise = loadStripe('{V}');\n",
        "stripe_pk",
        False,
    ),
    (
        "templates/signup.html",
        '<form method="post">\n  <input type="password" name="password" autocomplete="new-password">\n  <div class="g-recaptcha" data-sitekey="{V}"></div>\n</form>\n',
        "t10_recaptcha_site",
        False,
    ),
    (
        "src/push.js",
        "const sub = await reg.pushManager.subscribe({\n  userVisibleOnly: true,\n  applicationServerKey: urlBase64ToUint8Array('{V}'),\n});\n",
        "t10_vapid_public",
        False,
    ),
    # -- IaC ------------------------------------------------------------------------------
    (
        "terraform/providers.tf",
        'provider "azurerm" {\n  features {}\n  tenant_id       = "{V}"\n  subscription_id = "{V2}"\n}\n',
        "t10_trace_id",
        False,
    ),
    (
        "terraform/kms.tf",
        'resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {\n  rule {\n    apply_server_side_encryption_by_default {\n      kms_master_key_id = "arn:aws:kms:us-east-1:111122223333:key/{V}"\n    }\n  }\n}\n',
        "t10_trace_id",
        False,
    ),
    (
        "infra/Pulumi.prod.yaml",
        "encryptionsalt: v1:{V}\nconfig:\n  kiosk:dbPassword:\n    secure: v1:{V2}\n",
        "t10_b64_48",
        False,
    ),
    (
        "infra/lib/db-stack.ts",
        "const creds = rds.Credentials.fromSecret(\n  secretsmanager.Secret.fromSecretNameV2(this, 'DbSecret', '{V}'),\n);\n",
        "secret_name",
        False,
    ),
    (
        "infra/main.bicep",
        "@secure()\nparam adminPassword string\n\nmodule sql './sql.bicep' = {\n  params: {\n    adminPassword: kv.getSecret('{V}')\n  }\n}\n",
        "secret_name",
        False,
    ),
    (
        "cloudformation/rds.yaml",
        "Resources:\n  Database:\n    Type: AWS::RDS::DBInstance\n    Properties:\n      MasterUsername: dunning\n      MasterUserPassword: '{{resolve:secretsmanager:{V}:SecretString:password}}'\n",
        "secret_name",
        False,
    ),
    (
        "terraform/.terraform.lock.hcl",
        'provider "registry.terraform.io/hashicorp/aws" {\n  version = "5.31.0"\n  hashes = [\n    "{V}",\n    "{V2}",\n  ]\n}\n',
        "t10_lock_hash",
        False,
    ),
    # -- CI systems -------------------------------------------------------------------------
    (
        ".drone.yml",
        "steps:\n  - name: publish\n    image: plugins/docker\n    settings:\n      password:\n        from_secret: {V}\n",
        "secret_name",
        False,
    ),
    (
        ".teamcity/settings.kts",
        'params {\n    password("env.NPM_TOKEN", "credentialsJSON:{V}")\n}\n',
        "t10_trace_id",
        False,
    ),
    (".travis.yml", 'env:\n  global:\n    - secure: "{V}"\n', "t10_travis_secure", False),
    (
        ".github/workflows/ci.yml",
        "jobs:\n  test:\n    steps:\n      - uses: actions/checkout@{V} # v4.1.1\n      - run: make test\n",
        "t10_sha1",
        False,
    ),
    (
        "azure-pipelines.yml",
        "variables:\n  - group: kiosk-prod\nsteps:\n  - script: docker login -u $(REGISTRY_USER) -p {V} registry.corp.internal\n",
        "t10_placeholder",
        False,
    ),
    # -- mail -------------------------------------------------------------------------------
    (
        "src/main/resources/application.conf",
        'mail {\n  host = "smtp.corp.internal"\n  password = {V}\n}\n',
        "t10_hocon_ref",
        False,
    ),
    # -- prose and docs ---------------------------------------------------------------------
    (
        "docs/quickstart.md",
        "Point the service at your database:\n\n```\nDATABASE_URL=postgres://admin:{V}@db.example.com:5432/app\n```\n",
        "t10_url_password",
        False,
    ),
    (
        "docs/aws.rst",
        "Configure the CLI::\n\n   [default]\n   aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n   aws_secret_access_key = {V}\n",
        "t10_aws_doc",
        False,
    ),
    (
        "docs/netrc.md",
        "Example `~/.netrc`:\n\n```\nmachine git.example.org login demo password {V}\n```\n",
        "t10_doc_password",
        False,
    ),
    (
        "docs/errors.md",
        "| Code | Meaning |\n|------|---------|\n| {V} | The password was rejected |\n| {V2} | The API key has expired |\n",
        "error_code",
        False,
    ),
    ("docs/ssh.md", "Verify the host key; its fingerprint is `{V}`.\n", "t10_ssh_fpr", False),
    # -- hashes, digests, public material ----------------------------------------------------
    (
        "Dockerfile",
        "FROM python:3.12-slim@{V}\nRUN pip install --no-cache-dir kiosk\n",
        "t10_image_digest",
        False,
    ),
    (
        "docker/Dockerfile.tools",
        'ARG HELM_SHA256={V}\nRUN curl -fsSLo helm.tgz https://get.helm.sh/helm-v3.14.0-linux-amd64.tar.gz \\\n && echo "${HELM_SHA256}  helm.tgz" | sha256sum -c -\n',
        "t10_sha256",
        False,
    ),
    (
        "package-lock.json",
        '{\n  "packages": {\n    "node_modules/bcryptjs": {\n      "version": "2.4.3",\n      "integrity": "{V}"\n    }\n  }\n}\n',
        "t10_integrity",
        False,
    ),
    (
        "tests/fixtures/users.yml",
        "alice:\n  email: alice@corp.internal\n  password_digest: {V}\n",
        "bcrypt",
        False,
    ),
    (
        "kiosk/fixtures/users.json",
        '[{"model": "auth.user", "pk": 1, "fields": {"username": "admin", "password": "{V}"}}]\n',
        "pbkdf2_django",
        False,
    ),
    (
        "db/seeds/users.sql",
        "INSERT INTO users (email, password_hash) VALUES ('ops@corp.internal', '{V}');\n",
        "argon2",
        False,
    ),
    (
        "tests/test_hmac.py",
        'def test_rfc4231_case_1():\n    key = bytes.fromhex("{V}")\n    assert hmac.new(key, b"Hi There", "sha256").hexdigest() == EXPECTED\n',
        "t10_rfc_vector",
        False,
    ),
    ("home/.ssh/authorized_keys", "{V}\n", "ssh_public", False),
    ("certs/ca.crt", "{V}\n", "certificate", False),
    ("certs/server.key.enc", "{V}\n", "encrypted_key", False),
    (
        "keys/jwks.json",
        '{"keys":[{"kty":"RSA","use":"sig","kid":"2024-01","alg":"RS256","e":"AQAB","n":"{V}"}]}\n',
        "rsa_n",
        False,
    ),
    (
        "saml/idp-metadata.xml",
        '<md:IDPSSODescriptor>\n  <md:KeyDescriptor use="signing">\n    <ds:KeyInfo><ds:X509Data><ds:X509Certificate>{V}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>\n  </md:KeyDescriptor>\n</md:IDPSSODescriptor>\n',
        "t10_x509_b64",
        False,
    ),
    (
        "static/css/fonts.css",
        "@font-face {\n  font-family: 'Inter';\n  src: url(data:font/woff2;base64,{V}) format('woff2');\n}\n",
        "t10_font_b64",
        False,
    ),
    (
        "logs/api-2024-03-02.log",
        '2024-03-02T10:15:01Z WARN request_id={V} status=401 msg="invalid api key"\n',
        "t10_trace_id",
        False,
    ),
    (
        "tests/cassettes/test_auth.yaml",
        'interactions:\n- response:\n    headers:\n      X-Request-Id:\n      - {V}\n      WWW-Authenticate:\n      - Bearer realm="api"\n    status: {code: 401, message: Unauthorized}\n',
        "t10_trace_id",
        False,
    ),
    (
        "deploy/helm/values.yaml",
        "postgresql:\n  auth:\n    existingSecret: {V}\n    secretKeys:\n      adminPasswordKey: postgres-password\n",
        "secret_name",
        False,
    ),
    (
        "deploy/k8s/deployment.yaml",
        "env:\n  - name: DB_PASSWORD\n    valueFrom:\n      secretKeyRef:\n        name: {V}\n        key: password\n",
        "secret_name",
        False,
    ),
    (
        "ops/kube/config",
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {V}\n    server: https://k8s.corp.internal:6443\n  name: prod\n",
        "b64_cert",
        False,
    ),
    (
        ".docker/config.json",
        '{\n  "credHelpers": {\n    "{V}.dkr.ecr.eu-west-1.amazonaws.com": "ecr-login"\n  },\n  "credsStore": "desktop"\n}\n',
        "t10_account_id",
        False,
    ),
    (
        "scripts/Rotate.ps1",
        "$secret = Get-Secret -Name {V} -Vault KioskVault -AsPlainText\n",
        "secret_name",
        False,
    ),
]

#: ``evalset.build`` makes this part's values with this class.
VALUES = Tune10Values
