"""Blind part ``heldout11``: a logistics group and cargo airline operator, Corvane Freight & Air
(CFA: the Corvane Air Cargo fleet, Corvane Road trucking, regional cross-dock warehouses), with
its integration partners and vendors. Files are warehouse management system code and config
(Spring Boot and .NET services, Tomcat, Hibernate/JPA, SQL Server and Oracle schemas, logins and
exports, sqlplus batch scripts), handheld scanner apps (Kotlin/Android Gradle builds, keystore and
local properties, Xamarin csproj and C# clients), EDI/AS2 partner feeds (OpenAS2 config, X12 samples,
partner certificates, SFTP partner lists, sshpass and FileZilla leftovers), the shipment tracking
API in Go and Node/TypeScript (.env, .npmrc, Kubernetes, Helm, carrier clients for FedEx and UPS,
Google Maps/HERE/Mapbox geocoding), Kafka clients and connectors, SAP RFC bridges (JCo, pyrfc,
sapnwrfc.ini), IoT telematics on trucks (Mosquitto bridges, device JSON, AWS IoT device keys,
Paho/rumqttc clients, Samsara sync), GCP and AWS infrastructure (Terraform, service account JSON,
AWS credential files, Ansible), CI (GitHub Actions, GitLab CI, Jenkins), Dockerfiles and Compose,
ops tooling for PagerDuty, Datadog, Slack and Jira in Python, Go, shell and PowerShell, legacy PHP
and Rails apps, plus runbooks, handover notes, vendor contact sheets, Slack chat exports, HTML
docs and Jupyter notebooks. Written blind (without seeing the scanner, its rules or other
parts' templates).

Look-alikes sit in the same kinds of files under the same key names: database password hashes
(Oracle 12c ``S:``/``T:`` verifiers, SQL Server ``0x0200`` hashes, bcrypt, argon2, Mosquitto
``$7$``), values encrypted at rest (SOPS, sealed secrets, Ansible Vault, Jasypt ``ENC(...)``,
AWS KMS blobs, Jenkins ``{AQAAAB...}``, Rails credentials, DPAPI-protected web.config sections,
encrypted PEM keys), references to environment variables and secret stores in every language and
tool, placeholders and redactions, public material (certificates, public and SSH host keys, PGP
keys, fingerprints, Mapbox ``pk.`` tokens, HERE app ids, OAuth client ids), identifiers shaped
like secrets (tracking numbers, air waybills, VINs, IMEIs, EDI interchange ids, PagerDuty service
ids, Datadog dashboard ids, UUIDs, digests and lockfile checksums), UI text about passwords,
documented example credentials (AWS ``EXAMPLE`` keys, Slack's sample webhook) and credentials on
documentation hosts, and test values that say they are fake.
"""

from __future__ import annotations

import base64
import hashlib
import json
import string
import textwrap
import uuid
import zlib

import evalset

MULTI_SLOT = True

HEX = "0123456789abcdef"
HEXU = "0123456789ABCDEF"
DIGITS = string.digits
ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
UPNUM = string.ascii_uppercase + string.digits
LOWNUM = string.ascii_lowercase + string.digits
B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
PW_SYMBOLS = "!#%^*-_=+.@"
CRYPT64 = "./" + ALNUM
VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


class Heldout11Values(evalset.Values):
    """Value generators of the heldout11 part; every name starts with ``h11_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "runway",
            "pallet",
            "tarmac",
            "hangar",
            "waybill",
            "manifest",
            "forklift",
            "contrail",
            "bollard",
            "tailwind",
            "crosswind",
            "dockside",
            "freighter",
            "gantry",
        ]
        self.users = [
            "wms_app",
            "edi_pull",
            "tracker",
            "sapbridge",
            "telematics",
            "dispatch",
            "billing",
            "etl_batch",
            "scanner",
            "ops",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def h11_util_b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        out = base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)
        text = out.decode()
        return text if pad else text.rstrip("=")

    def h11_util_crc_token(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def h11_util_armor(self, label: str, der: bytes, width: int = 64) -> str:
        body = base64.b64encode(der).decode()
        rows = [body[i : i + width] for i in range(0, len(body), width)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def h11_util_aws_id(self) -> str:
        return "AKIA" + self.s(16, string.ascii_uppercase + "234567")

    def h11_util_aws_secret(self) -> str:
        return self.s(1, ALNUM) + self.s(39, ALNUM + "/+")

    # ------------------------------------------------------------------ positives: passwords
    def h11_pw(self) -> str:
        shape = self.rng.randrange(6)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*.+"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(13, 21), ALNUM + PW_SYMBOLS
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}.{other.capitalize()}.{self.s(2, DIGITS)}"
        if shape == 3:
            return "Cv" + self.s(12, ALNUM) + self.pick(list("!#%"))
        if shape == 4:
            return self.s(16, ALNUM)
        leet = word.replace("a", "@").replace("o", "0").replace("e", "3")
        return leet[0].upper() + leet[1:] + "#" + self.s(4, DIGITS)

    def h11_weak_pw(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(
                [
                    "Welcome1",
                    "Password1!",
                    "Freight123",
                    "corvane1",
                    "admin123",
                    "Qwerty123!",
                    "letmein1",
                    "Cargo2023",
                    "wms12345",
                ]
            )
        if shape == 1:
            return "Corvane" + str(self.rng.randrange(2015, 2026)) + self.pick(["", "!", "#"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2024", "!"])
        return self.pick(["Summer", "Winter", "Spring", "Autumn"]) + str(
            self.rng.randrange(2019, 2026)
        )

    def h11_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(4, DIGITS)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(13, 22), ALNUM + "-_.")

    def h11_oracle_pw(self) -> str:
        body = self.s(1, string.ascii_uppercase) + self.s(self.rng.randrange(9, 15), ALNUM)
        cut = self.rng.randrange(3, len(body))
        return body[:cut] + self.pick(["#", "_", "#", "_"]) + body[cut:] + self.s(2, DIGITS)

    def h11_mqtt_pw(self) -> str:
        if self.rng.randrange(2):
            return self.s(24, ALNUM)
        return "-".join(self.pick(self.words) for _ in range(3)) + self.s(3, DIGITS)

    def h11_b64_pw(self) -> str:
        return base64.b64encode(self.h11_pw().encode()).decode()

    def h11_basic_b64(self) -> str:
        user = self.pick([*self.users, "svc-ci", "corvane-deploy"])
        return base64.b64encode(f"{user}:{self.h11_pw()}".encode()).decode()

    # ------------------------------------------------------------------ positives: tokens
    def h11_api_key(self) -> str:
        return "cvt_live_" + self.s(32, ALNUM)

    def h11_github(self) -> str:
        return self.h11_util_crc_token(self.pick(["ghp", "ghp", "ghp", "gho"]))

    def h11_github_fine(self) -> str:
        return f"github_pat_11{self.s(20, UPNUM)}_{self.s(59, ALNUM)}"

    def h11_npm(self) -> str:
        return self.h11_util_crc_token("npm")

    def h11_gitlab(self) -> str:
        return "glpat-" + self.s(20, URLSAFE)

    def h11_vault_token(self) -> str:
        if self.rng.randrange(3):
            return "hvs." + self.s(24, ALNUM)
        return "hvs.CAESI" + self.s(86, URLSAFE)

    def h11_jenkins_token(self) -> str:
        return "11" + self.s(32, HEX)

    def h11_slack_bot(self) -> str:
        return (
            f"xoxb-{self.s(self.rng.randrange(10, 14), DIGITS)}-"
            f"{self.s(13, DIGITS)}-{self.s(24, ALNUM)}"
        )

    def h11_slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T0{self.s(self.rng.randrange(7, 10), UPNUM)}"
            f"/B0{self.s(self.rng.randrange(7, 10), UPNUM)}/{self.s(24, ALNUM)}"
        )

    def h11_pd_api(self) -> str:
        if self.rng.randrange(2):
            return "u+" + self.s(18, ALNUM + "_-")
        return self.s(1, string.ascii_letters) + self.s(19, ALNUM + "_-+")

    def h11_pd_routing(self) -> str:
        return self.s(32, HEX)

    def h11_dd_api(self) -> str:
        return self.s(32, HEX)

    def h11_dd_app(self) -> str:
        return self.s(40, HEX)

    def h11_jira_token(self) -> str:
        return "ATATT3xFfGF0" + self.s(171, URLSAFE) + "=" + self.s(8, HEXU)

    def h11_gcp_api_key(self) -> str:
        return "AIzaSy" + self.s(33, URLSAFE)

    def h11_here_key(self) -> str:
        return self.s(43, URLSAFE)

    def h11_mapbox_sk(self) -> str:
        claims = {
            "u": self.pick(["corvane", "corvane-ops", "cfa-tracking"]),
            "a": "cl" + self.s(23, LOWNUM),
        }
        mid = (
            base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode())
            .decode()
            .rstrip("=")
        )
        return f"sk.{mid}.{self.s(22, URLSAFE)}"

    def h11_samsara(self) -> str:
        return "samsara_api_" + self.s(30, ALNUM)

    def h11_fedex_secret(self) -> str:
        return self.s(32, HEX)

    def h11_fedex_env_pair(self) -> str:
        return f"FEDEX_CLIENT_ID=l7xx{self.s(32, HEX)}\nFEDEX_CLIENT_SECRET={self.s(32, HEX)}"

    def h11_ups_secret(self) -> str:
        return self.s(64, ALNUM)

    def h11_ups_yaml_pair(self) -> str:
        return f"client_id: {self.s(48, ALNUM)}\nclient_secret: {self.s(64, ALNUM)}"

    def h11_confluent_secret(self) -> str:
        return self.s(1, ALNUM) + self.s(63, ALNUM + "+/")

    def h11_hmac_hex(self) -> str:
        return self.s(64, HEX)

    def h11_b64_32(self) -> str:
        return self.h11_util_b64(32)

    def h11_django_key(self) -> str:
        return self.s(50, string.ascii_lowercase + DIGITS + "!@#%^&*(-_=+)")

    def h11_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            raw = json.dumps(obj, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")

        iat = 1704000000 + self.rng.randrange(3 * 10**7)
        header = part({"alg": self.pick(["HS256", "RS256"]), "typ": "JWT"})
        payload = part(
            {
                "iss": "https://auth.corvane.com",
                "sub": self.pick(
                    ["svc-tracking-portal", "partner-kn", "scanner-fleet", "dispatch"]
                ),
                "aud": "tracking-api",
                "scope": self.pick(["shipments:read", "shipments:write events:read", "admin"]),
                "iat": iat,
                "exp": iat + self.pick([3600, 86400, 31536000]),
            }
        )
        return f"{header}.{payload}.{self.h11_util_b64(32, urlsafe=True, pad=False)}"

    # ------------------------------------------------------------------ positives: cloud pairs
    def h11_aws_env_pair(self) -> str:
        return (
            f"AWS_ACCESS_KEY_ID={self.h11_util_aws_id()}\n"
            f"AWS_SECRET_ACCESS_KEY={self.h11_util_aws_secret()}"
        )

    def h11_aws_ini_pair(self) -> str:
        return (
            f"aws_access_key_id = {self.h11_util_aws_id()}\n"
            f"aws_secret_access_key = {self.h11_util_aws_secret()}"
        )

    def h11_aws_yaml_pair(self) -> str:
        return (
            f"AWS_ACCESS_KEY_ID: {self.h11_util_aws_id()}\n"
            f"AWS_SECRET_ACCESS_KEY: {self.h11_util_aws_secret()}"
        )

    def h11_aws_tf_pair(self) -> str:
        return (
            f'access_key = "{self.h11_util_aws_id()}"\nsecret_key = "{self.h11_util_aws_secret()}"'
        )

    # ------------------------------------------------------------------ positives: keys
    def h11_rsa_pem(self) -> str:
        der = b"\x30\x82\x04\xa4\x02\x01\x00\x02\x82\x01\x01\x00" + self.rng.randbytes(1180)
        return self.h11_util_armor("RSA PRIVATE KEY", der)

    def h11_pkcs8_pem(self) -> str:
        der = (
            b"\x30\x82\x04\xbe\x02\x01\x00\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01"
            b"\x05\x00\x04\x82\x04\xa8" + self.rng.randbytes(1192)
        )
        return self.h11_util_armor("PRIVATE KEY", der)

    def h11_ec_pem(self) -> str:
        der = (
            b"\x30\x77\x02\x01\x01\x04\x20"
            + self.rng.randbytes(32)
            + b"\xa0\x0a\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07\xa1\x44\x03\x42\x00\x04"
            + self.rng.randbytes(64)
        )
        return self.h11_util_armor("EC PRIVATE KEY", der)

    def h11_openssh_key(self) -> str:
        raw = (
            b"openssh-key-v1\x00\x00\x00\x00\x04none\x00\x00\x00\x04none\x00\x00\x00\x00"
            b"\x00\x00\x00\x01\x00\x00\x00\x33\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20"
            + self.rng.randbytes(32)
            + b"\x00\x00\x00\x98"
            + self.rng.randbytes(152)
        )
        return self.h11_util_armor("OPENSSH PRIVATE KEY", raw, 70)

    def h11_gcp_sa_key(self) -> str:
        return self.h11_pkcs8_pem().replace("\n", "\\n") + "\\n"

    # ------------------------------------------------------------------ negatives: placeholders
    def h11_placeholder(self) -> str:
        return self.pick(
            [
                "<password>",
                "CHANGE_ME",
                "changeme",
                "your-password-here",
                "xxxxxxxxxxxxxxxx",
                "********",
                "REPLACE_WITH_REAL_VALUE",
                "<set-in-vault>",
                "TODO-fill-in",
                "__DB_PASSWORD__",
                "<YOUR_API_KEY>",
                "your_token_here",
            ]
        )

    def h11_env_placeholder(self) -> str:
        return self.pick(
            [
                "",
                "changeme",
                "<fill-me>",
                "your-key-here",
                "xxxxxxxx",
                "REPLACE_ME",
                "<secret>",
                "set-me-locally",
            ]
        )

    def h11_redacted(self) -> str:
        return self.pick(
            [
                "[REDACTED]",
                "********",
                "<redacted>",
                "****",
                "[hidden]",
                "xxxx-xxxx-xxxx",
                "<masked by DLP>",
                "•••••••••",
            ]
        )

    def h11_test_fake(self) -> str:
        return self.pick(
            [
                "not-a-real-password",
                "fake-secret-for-unit-tests",
                "dummy-token",
                "test-secret-do-not-use",
                "unit-test-only",
                "fake_api_key",
                "mock-access-token",
                "testtesttest",
            ]
        )

    def h11_fake_token(self) -> str:
        return self.pick(
            [
                "ghp_abc123",
                "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "xoxb-0000-0000-fake",
                "xoxb-your-bot-token",
                "samsara_api_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
                "AIzaSyXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
                "npm_0000000000000000000000000000000000",
                "glpat-xxxxxxxxxxxxxxxxxxxx",
                "abcdefghijklmnopqrstuvwxyz012345",
                "1234567890abcdef1234567890abcdef",
                "sk.test.token",
                "ATATT-your-jira-token",
            ]
        )

    def h11_doc_pw(self) -> str:
        return self.pick(["demo", "password", "secret", "example", "s3cr3t", "P@ssw0rd", "hunter2"])

    def h11_example_dsn(self) -> str:
        user = self.pick(["user", "admin", "app", "etl"])
        host = self.pick(
            [
                "db.example.com",
                "oracle.example.org",
                "sql.example.net",
                "localhost.test",
                "db.invalid",
            ]
        )
        scheme = self.pick(["postgresql", "oracle", "mssql", "mysql"])
        return f"{scheme}://{user}:{self.pick(['password', 'secret', 'pass'])}@{host}/wms"

    def h11_aws_example_pair(self) -> str:
        return self.pick(
            [
                "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "aws_access_key_id = AKIAI44QH8DHBEXAMPLE\n"
                "aws_secret_access_key = je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
            ]
        )

    def h11_slack_webhook_example(self) -> str:
        return self.pick(
            [
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "https://hooks.slack.com/services/TXXXXXXXX/BXXXXXXXX/your-webhook-secret",
                "https://hooks.slack.com/services/<team>/<bot>/<token>",
            ]
        )

    def h11_ui_text(self) -> str:
        return self.pick(
            [
                "Enter your scanner PIN",
                "Password must be at least 12 characters",
                "Forgot password?",
                "Incorrect username or password",
                "Mot de passe oublié ?",
                "Passwort eingeben",
                "Contraseña incorrecta",
                "パスワードを入力してください",
                "Wachtwoord vergeten?",
                "Senha do operador",
                "Hasło wygasło",
            ]
        )

    def h11_pw_policy(self) -> str:
        return self.pick(
            [
                "at least 14 characters",
                "rotated every 90 days",
                "minimum 12, maximum 64 characters",
                "no reuse of the last 10",
            ]
        )

    def h11_key_name(self) -> str:
        return self.pick(
            ["pref_auth_token", "scanner_password", "KEY_API_TOKEN", "session_secret", "pin_hash"]
        )

    # ------------------------------------------------------------------ negatives: references
    def h11_secret_name(self) -> str:
        return self.pick(
            [
                "tracking-api-db",
                "wms-sqlserver-creds",
                "datadog-secret",
                "fedex-oauth",
                "sftp-partner-keys",
                "pagerduty-routing",
            ]
        )

    def h11_cred_id(self) -> str:
        return self.pick(
            [
                "pagerduty-api-token",
                "dd-api-key",
                "sftp-dhl-edi",
                "gcr-json-key",
                str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            ]
        )

    def h11_vault_ref(self) -> str:
        return self.pick(
            [
                "op://Integrations/DHL SFTP/password",
                "vault:secret/data/edi/dhl#password",
                "projects/corvane-prod/secrets/sftp-dhl-password/versions/latest",
                "1Password > Integrations > SAP RFC_CORVANE",
                "Keeper: Shared-Ops/Oracle WMSPRD",
                "arn:aws:secretsmanager:eu-west-1:"
                + self.s(12, DIGITS)
                + ":secret:edi/kn-"
                + self.s(6),
            ]
        )

    def h11_gcp_secret_path(self) -> str:
        return self.pick(
            [
                "tracking-api-db-password",
                "projects/corvane-prod/secrets/fedex-client-secret",
                "wms/prod/sqlserver",
                "sm://corvane-prod/ups-client-secret",
            ]
        )

    def h11_spring_ref(self) -> str:
        return self.pick(
            [
                "${WMS_DB_PASSWORD}",
                "${sap.jco.password}",
                "${vault.wms.db.password}",
                "${DB_PASSWORD:}",
                "${sm://wms-db-password}",
            ]
        )

    def h11_kt_ref(self) -> str:
        return self.pick(
            [
                'System.getenv("KEYSTORE_PASSWORD")',
                'keystoreProperties["storePassword"] as String',
                'providers.gradleProperty("signingKeyPassword").get()',
                'project.findProperty("storePassword") as String? ?: ""',
            ]
        )

    def h11_msbuild_ref(self) -> str:
        return self.pick(
            [
                "env:ANDROID_KEYSTORE_PASS",
                "$(AndroidKeystorePassword)",
                "file:/Users/build/.keypass",
            ]
        )

    def h11_cs_ref(self) -> str:
        return self.pick(
            [
                'configuration["FedEx:ClientSecret"]',
                'Environment.GetEnvironmentVariable("FEDEX_CLIENT_SECRET")',
                "_options.Value.ClientSecret",
                '(await _secrets.GetSecretAsync("fedex-client-secret")).Value',
            ]
        )

    def h11_go_ref(self) -> str:
        return self.pick(
            [
                'os.Getenv("MQTT_PASSWORD")',
                "cfg.Broker.Password",
                'viper.GetString("mqtt.password")',
            ]
        )

    def h11_node_ref(self) -> str:
        return self.pick(
            [
                "process.env.UPS_CLIENT_SECRET",
                "config.get('carriers.ups.clientSecret')",
                "process.env['UPS_CLIENT_SECRET'] ?? ''",
                "await getSecret('ups-client-secret')",
            ]
        )

    def h11_py_ref(self) -> str:
        return self.pick(
            [
                'os.environ["DJANGO_SECRET_KEY"]',
                'os.getenv("DJANGO_SECRET_KEY", "")',
                'env("DJANGO_SECRET_KEY")',
                'secrets_client.access("django-secret-key")',
            ]
        )

    def h11_php_ref(self) -> str:
        return self.pick(
            ["getenv('BILLING_DB_PASS')", "$_ENV['BILLING_DB_PASS']", "$config['db']['pass']"]
        )

    def h11_ruby_ref(self) -> str:
        return self.pick(
            [
                "<%= ENV['DISPATCH_DB_PASSWORD'] %>",
                "<%= Rails.application.credentials.dig(:db, :password) %>",
                "<%= ENV.fetch('DISPATCH_DB_PASSWORD') %>",
            ]
        )

    def h11_rust_ref(self) -> str:
        return self.pick(
            [
                'std::env::var("MQTT_PASSWORD")?',
                "cfg.mqtt.password.clone()",
                'env!("MQTT_PASSWORD")',
            ]
        )

    def h11_ps_ref(self) -> str:
        return self.pick(
            [
                "$env:SFTP_PASSWORD",
                "(Get-Secret -Name DhlSftp -AsPlainText)",
                "Read-Host -Prompt 'SFTP password' -AsSecureString",
                "$cred.GetNetworkCredential().Password",
            ]
        )

    def h11_shell_ref(self) -> str:
        return self.pick(
            [
                '"$(gcloud secrets versions access latest --secret=wms-oracle-batch)"',
                '"${ORACLE_BATCH_PW:?not set}"',
                '"$(vault kv get -field=password secret/wms/oracle)"',
                '"$(cat /run/secrets/oracle_batch)"',
            ]
        )

    def h11_npm_ref(self) -> str:
        return self.pick(["${NPM_TOKEN}", "${GITHUB_TOKEN}", "${NODE_AUTH_TOKEN}"])

    def h11_gha_ref(self) -> str:
        return self.pick(
            [
                "${{ secrets.DD_API_KEY }}",
                "${{ secrets.DATADOG_APP_KEY }}",
                "${{ secrets.DD_KEYS_PROD }}",
            ]
        )

    def h11_gitlab_ref(self) -> str:
        return self.pick(["$CI_REGISTRY_PASSWORD", "$CI_JOB_TOKEN", "${SCANNER_DEPLOY_TOKEN}"])

    def h11_jira_ref(self) -> str:
        return self.pick(
            ["${JIRA_API_TOKEN}", "$(JIRA_TOKEN)", "", "<from Keeper: Ops/Jira automation>"]
        )

    def h11_go_secret_ref(self) -> str:
        return self.pick(
            [
                'mustEnv("WEBHOOK_SECRET")',
                'mustEnv("SAMSARA_WEBHOOK_SECRET")',
                'loadSecret("samsara-webhook")',
            ]
        )

    def h11_tf_ref(self) -> str:
        return self.pick(
            [
                "var.db_password",
                "random_password.wms.result",
                "data.google_secret_manager_secret_version.db.secret_data",
                "data.aws_ssm_parameter.db_password.value",
                "module.secrets.wms_db_password",
            ]
        )

    def h11_helm_ref(self) -> str:
        return self.pick(
            [
                "{{ .Values.db.password | b64enc | quote }}",
                '{{ required "db.password is required" .Values.db.password | b64enc }}',
                '{{ include "tracking.dbPassword" . }}',
            ]
        )

    def h11_jinja_ref(self) -> str:
        return self.pick(
            [
                "{{ vault_wms_db_password }}",
                "{{ lookup('env', 'WMS_DB_PASSWORD') }}",
                "{{ wms_db.password }}",
            ]
        )

    def h11_compose_ref(self) -> str:
        return self.pick(
            [
                "${ORACLE_PASSWORD:?set ORACLE_PASSWORD}",
                "${WMS_DB_PASSWORD}",
                "${DB_PASS:-}",
                "/run/secrets/db_password",
            ]
        )

    def h11_kafka_ref(self) -> str:
        return self.pick(
            [
                "${file:/opt/kafka/secrets/connect.properties:oracle.password}",
                "${env:KAFKA_SASL_PASSWORD}",
                "${secrets:kafka/sap-bridge:password}",
                "${directory:/mnt/secrets:sasl-password}",
            ]
        )

    def h11_gradle_placeholder(self) -> str:
        return self.pick(["${MAPS_API_KEY}", "@string/google_maps_key", "${mapsApiKey}"])

    def h11_dd_placeholder(self) -> str:
        return self.pick(
            [
                "ENC[dd_api_key]",
                "<YOUR_DATADOG_API_KEY>",
                "ENC[k8s_secret@datadog/datadog-secret/api-key]",
                '""',
            ]
        )

    # ------------------------------------------------------------------ negatives: hashes, digests
    def h11_bcrypt(self) -> str:
        return f"$2{self.pick(['a', 'b', 'y'])}${self.pick(['10', '12'])}$" + self.s(53, CRYPT64)

    def h11_argon2(self) -> str:
        salt = self.h11_util_b64(16, pad=False)
        return f"$argon2id$v=19$m=65536,t=3,p=4${salt}${self.h11_util_b64(32, pad=False)}"

    def h11_mosquitto_hash(self) -> str:
        return f"$7$101${self.h11_util_b64(12)}${self.h11_util_b64(64)}"

    def h11_oracle_hash(self) -> str:
        return f"S:{self.s(60, HEXU)};T:{self.s(160, HEXU)}"

    def h11_mssql_hash(self) -> str:
        return "0x0200" + self.s(136, HEXU)

    def h11_sha256(self) -> str:
        return hashlib.sha256(self.rng.randbytes(24)).hexdigest()

    def h11_md5(self) -> str:
        return hashlib.md5(self.rng.randbytes(16)).hexdigest()

    def h11_git_sha(self) -> str:
        return self.s(40, HEX)

    def h11_docker_digest(self) -> str:
        return "sha256:" + self.h11_sha256()

    def h11_sri(self) -> str:
        return "sha512-" + self.h11_util_b64(64)

    def h11_tf_hash(self) -> str:
        return "h1:" + self.h11_util_b64(32)

    def h11_fpr_colon(self) -> str:
        return ":".join(self.s(2, HEXU) for _ in range(self.pick([20, 32])))

    def h11_gpg_fpr(self) -> str:
        return self.s(40, HEXU)

    # ------------------------------------------------------------------ negatives: public / encrypted
    def h11_public_pem(self) -> str:
        der = (
            b"\x30\x82\x01\x22\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x00\x03\x82\x01\x0f\x00"
            + self.rng.randbytes(270)
        )
        return self.h11_util_armor("PUBLIC KEY", der)

    def h11_cert(self) -> str:
        der = b"\x30\x82\x03\x8a\x30\x82\x02\x72\xa0\x03\x02\x01\x02\x02\x14" + self.rng.randbytes(
            890
        )
        return self.h11_util_armor("CERTIFICATE", der)

    def h11_ssh_pub(self) -> str:
        body = base64.b64encode(
            b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + self.rng.randbytes(32)
        ).decode()
        return f"ssh-ed25519 {body} {self.pick(self.users)}@corvane-{self.pick(['edi01', 'bastion', 'jenkins'])}"

    def h11_known_hosts(self) -> str:
        host = self.pick(
            ["sftp.dhl-edi.net", "edi.kuehne-nagel.com", "as2.maersk.com", "ftp.dbschenker.com"]
        )
        body = base64.b64encode(
            b"\x00\x00\x00\x13ecdsa-sha2-nistp256\x00\x00\x00\x08nistp256\x00\x00\x00\x41\x04"
            + self.rng.randbytes(64)
        ).decode()
        return f"{host} ecdsa-sha2-nistp256 {body}"

    def h11_pgp_pub(self) -> str:
        body = self.h11_util_b64(48 * 9)
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        return (
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n"
            + "\n".join(rows)
            + f"\n={self.h11_util_b64(3)}\n-----END PGP PUBLIC KEY BLOCK-----"
        )

    def h11_encrypted_pem(self) -> str:
        if self.rng.randrange(2):
            return self.h11_util_armor(
                "ENCRYPTED PRIVATE KEY", b"\x30\x82\x05\x16\x30\x40" + self.rng.randbytes(1300)
            )
        body = self.h11_util_b64(48 * 25)
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        return (
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
            f"DEK-Info: AES-256-CBC,{self.s(32, HEXU)}\n\n"
            + "\n".join(rows)
            + "\n-----END RSA PRIVATE KEY-----"
        )

    def h11_sops(self) -> str:
        data = self.h11_util_b64(self.rng.randrange(12, 40))
        return f"ENC[AES256_GCM,data:{data},iv:{self.h11_util_b64(32)},tag:{self.h11_util_b64(16)},type:str]"

    def h11_ansible_vault(self) -> str:
        body = self.s(80 * 7, HEX)
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(
            body[i : i + 80] for i in range(0, len(body), 80)
        )

    def h11_sealed(self) -> str:
        return "AgB" + self.h11_util_b64(self.rng.randrange(400, 600))

    def h11_jasypt(self) -> str:
        return f"ENC({self.h11_util_b64(self.pick([32, 48]))})"

    def h11_kms_blob(self) -> str:
        return "AQICAHh" + self.h11_util_b64(150)

    def h11_jenkins_enc(self) -> str:
        return "{AQAAABAAAAAQ" + self.h11_util_b64(48) + "}"

    def h11_rails_enc(self) -> str:
        return f"{self.h11_util_b64(180)}--{self.h11_util_b64(12)}--{self.h11_util_b64(16)}"

    def h11_dpapi_cipher(self) -> str:
        return "AQAAANCMnd8BFdERjHoAwE/Cl+sBAAAA" + self.h11_util_b64(260)

    # ------------------------------------------------------------------ negatives: identifiers
    def h11_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def h11_tracking(self) -> str:
        if self.rng.randrange(2):
            return "1Z" + self.s(6, UPNUM) + self.s(10, DIGITS)
        return self.s(12, DIGITS)

    def h11_awb(self) -> str:
        serial = self.rng.randrange(10**6, 10**7)
        return f"{self.pick(['176', '618', '020', '157'])}-{serial:07d}{serial % 7}"

    def h11_vin(self) -> str:
        return self.pick(["1FUJ", "3AKJ", "1XKY", "4V4N"]) + self.s(13, VIN_CHARS)

    def h11_imei(self) -> str:
        digits = [int(c) for c in "35" + self.s(12, DIGITS)]
        total = 0
        for i, d in enumerate(digits):
            if i % 2:
                d *= 2
                d = d - 9 if d > 9 else d
            total += d
        return "".join(map(str, digits)) + str((10 - total % 10) % 10)

    def h11_pd_service_id(self) -> str:
        return "P" + self.s(6, UPNUM)

    def h11_sa_email(self) -> str:
        return f"{self.pick(['wms-exporter', 'tracking-api', 'edi-bridge'])}@corvane-{self.pick(['prod', 'stg'])}.iam.gserviceaccount.com"

    def h11_here_app_id(self) -> str:
        return self.s(20, ALNUM)

    def h11_mapbox_pk(self) -> str:
        claims = {"u": "corvane", "a": "cl" + self.s(23, LOWNUM)}
        mid = (
            base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode())
            .decode()
            .rstrip("=")
        )
        return f"pk.{mid}.{self.s(22, URLSAFE)}"

    def h11_google_client_id(self) -> str:
        return f"{self.s(12, DIGITS)}-{self.s(32, LOWNUM)}.apps.googleusercontent.com"

    def h11_dd_dash_id(self) -> str:
        return f"{self.s(3, LOWNUM)}-{self.s(3, LOWNUM)}-{self.s(3, LOWNUM)}"

    def h11_edi_id(self) -> str:
        return self.pick(
            ["CORVANEFRT", "CORVANEAIR", "KNUSA01", "DHLGLOBAL", "MAEU", "SCHENKERDE"]
        ).ljust(15)

    def h11_jira_key(self) -> str:
        return f"{self.pick(['WMS', 'EDI', 'TRK', 'OPS'])}-{self.rng.randrange(100, 9999)}"

    def h11_png_b64(self) -> str:
        return base64.b64encode(
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
            + self.rng.randbytes(self.rng.randrange(300, 600))
        ).decode()

    def h11_getpass_ref(self) -> str:
        return self.pick(
            [
                "getpass.getpass('Oracle password: ')",
                "os.environ['ORACLE_ANALYTICS_PW']",
                "keyring.get_password('wmsprd', 'ANALYTICS')",
            ]
        )

    def h11_site_verification(self) -> str:
        return self.s(43, URLSAFE)

    def h11_mic(self) -> str:
        return self.h11_util_b64(32) + ", sha-256"


VALUES = Heldout11Values


def _t(path: str, gen: str, positive: bool, text: str) -> evalset.Template:
    return (path, textwrap.dedent(text).lstrip("\n"), gen, positive)


TEMPLATES: list[evalset.Template] = [
    # ================================================================ WMS: Spring / JPA / Tomcat
    _t(
        "wms/inventory-service/src/main/resources/application-prod.yml",
        "h11_pw",
        True,
        """
        server:
          port: 8443
        spring:
          datasource:
            url: jdbc:sqlserver://sqlwms01.corvane.internal:1433;databaseName=WMS_PROD;encrypt=true
            username: wms_app
            password: {V}
            hikari:
              maximum-pool-size: 20
          kafka:
            bootstrap-servers: kafka-1.corvane.internal:9093
            properties:
              security.protocol: SASL_SSL
              sasl.mechanism: SCRAM-SHA-512
              sasl.jaas.config: org.apache.kafka.common.security.scram.ScramLoginModule required username="wms-inventory" password="{V2}";
        management:
          endpoints.web.exposure.include: health,prometheus
        """,
    ),
    _t(
        "wms/inventory-service/src/main/resources/application.yml",
        "h11_spring_ref",
        False,
        """
        spring:
          application:
            name: inventory-service
          datasource:
            url: jdbc:sqlserver://${WMS_DB_HOST}:1433;databaseName=WMS
            username: ${WMS_DB_USER:wms_app}
            password: {V}
          kafka:
            properties:
              sasl.jaas.config: >-
                org.apache.kafka.common.security.scram.ScramLoginModule required
                username="wms-inventory" password="{V2}";
        corvane:
          putaway:
            max-pallets-per-slot: 2
        """,
    ),
    _t(
        "wms/WmsService/appsettings.Production.json",
        "h11_pw",
        True,
        """
        {
          "Logging": { "LogLevel": { "Default": "Warning" } },
          "ConnectionStrings": {
            "Wms": "Server=sqlwms01.corvane.internal;Database=WMS_PROD;User Id=wms_app;Password={V};TrustServerCertificate=True;MultipleActiveResultSets=true",
            "Labels": "Server=sqlwms02.corvane.internal;Database=LABELS;User Id=label_print;Password={V2};"
          },
          "Zebra": { "PrinterPool": "dock-a,dock-b" }
        }
        """,
    ),
    _t(
        "wms/WmsService/appsettings.Development.json",
        "h11_env_placeholder",
        False,
        """
        {
          "ConnectionStrings": {
            "Wms": "Server=(localdb)\\\\MSSQLLocalDB;Database=WMS_DEV;Trusted_Connection=True;"
          },
          "Sftp": {
            "Host": "localhost",
            "User": "dev",
            "Password": "{V}"
          },
          "FedEx": { "ClientId": "{V2}", "ClientSecret": "{V3}" }
        }
        """,
    ),
    _t(
        "wms/db/migrations/V14__create_reporting_login.sql",
        "h11_pw",
        True,
        """
        -- WMS-1842: read-only login for the PowerBI gateway
        USE [master];
        GO
        CREATE LOGIN [wms_reporting] WITH PASSWORD = N'{V}', CHECK_POLICY = OFF, DEFAULT_DATABASE = [WMS_PROD];
        GO
        USE [WMS_PROD];
        CREATE USER [wms_reporting] FOR LOGIN [wms_reporting];
        ALTER ROLE [db_datareader] ADD MEMBER [wms_reporting];
        GO
        """,
    ),
    _t(
        "wms/db/dr/logins_transfer_sqlwms01.sql",
        "h11_mssql_hash",
        False,
        """
        /* sp_help_revlogin output from sqlwms01, 2024-02-11, for the DR replica */
        -- Login: wms_app
        CREATE LOGIN [wms_app] WITH PASSWORD = {V} HASHED, SID = 0x9C3F6A21B7E44D0F8A1E2B3C4D5E6F70, DEFAULT_DATABASE = [WMS_PROD], CHECK_POLICY = ON, CHECK_EXPIRATION = OFF
        -- Login: label_print
        CREATE LOGIN [label_print] WITH PASSWORD = {V2} HASHED, SID = 0x1A2B3C4D5E6F708192A3B4C5D6E7F801, DEFAULT_DATABASE = [LABELS], CHECK_POLICY = OFF
        """,
    ),
    _t(
        "wms/db/oracle/010_create_users.sql",
        "h11_oracle_pw",
        True,
        """
        -- WMSPRD (Oracle 19c) schema owners for the legacy yard module
        CREATE USER yard_owner IDENTIFIED BY "{V}"
          DEFAULT TABLESPACE yard_data QUOTA UNLIMITED ON yard_data;
        GRANT CONNECT, RESOURCE TO yard_owner;

        CREATE USER edi_stage IDENTIFIED BY {V2};
        GRANT CREATE SESSION TO edi_stage;
        ALTER USER edi_stage PROFILE integration_profile;
        """,
    ),
    _t(
        "wms/db/oracle/clone_users_from_prod.sql",
        "h11_oracle_hash",
        False,
        """
        -- generated by dbms_metadata.get_ddl('USER', ...) on WMSPRD, replayed on WMSUAT
        -- so that the integration accounts keep their production passwords
        ALTER USER "EDI_STAGE" IDENTIFIED BY VALUES '{V}';
        ALTER USER "YARD_OWNER" IDENTIFIED BY VALUES '{V2}';
        ALTER USER "WMS_RO" IDENTIFIED BY VALUES '{V3}';
        """,
    ),
    _t(
        "wms/scripts/nightly_yard_export.sh",
        "h11_oracle_pw",
        True,
        """
        #!/bin/bash
        # cron: 15 2 * * *  /opt/wms/scripts/nightly_yard_export.sh
        set -euo pipefail
        export ORACLE_HOME=/u01/app/oracle/product/19.0.0/client_1
        export PATH=$ORACLE_HOME/bin:$PATH
        OUT=/data/exports/yard_$(date +%Y%m%d).csv

        sqlplus -s yard_owner/{V}@WMSPRD <<SQL > "$OUT"
        set heading off feedback off pagesize 0 colsep ','
        select trailer_id, door, status, updated_at from yard_moves where updated_at > sysdate - 1;
        exit
        SQL
        gzip -f "$OUT"
        """,
    ),
    _t(
        "wms/scripts/nightly_dock_export.sh",
        "h11_shell_ref",
        False,
        """
        #!/bin/bash
        # moved off hard-coded credentials in WMS-2210
        set -euo pipefail
        ORA_USER=yard_owner
        ORA_PW={V}
        sqlplus -s "${ORA_USER}/${ORA_PW}@WMSPRD" @/opt/wms/sql/dock_export.sql
        """,
    ),
    _t(
        "wms/inventory-service/src/main/resources/META-INF/persistence.xml",
        "h11_pw",
        True,
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <persistence xmlns="https://jakarta.ee/xml/ns/persistence" version="3.0">
          <persistence-unit name="wmsLegacy" transaction-type="RESOURCE_LOCAL">
            <class>com.corvane.wms.legacy.SlotEntity</class>
            <properties>
              <property name="jakarta.persistence.jdbc.driver" value="oracle.jdbc.OracleDriver"/>
              <property name="jakarta.persistence.jdbc.url" value="jdbc:oracle:thin:@//ora-wms01.corvane.internal:1521/WMSPRD"/>
              <property name="jakarta.persistence.jdbc.user" value="WMS_LEGACY"/>
              <property name="jakarta.persistence.jdbc.password" value="{V}"/>
              <property name="hibernate.dialect" value="org.hibernate.dialect.OracleDialect"/>
            </properties>
          </persistence-unit>
        </persistence>
        """,
    ),
    _t(
        "wms/slotting-service/src/main/resources/META-INF/persistence.xml",
        "h11_spring_ref",
        False,
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <persistence xmlns="https://jakarta.ee/xml/ns/persistence" version="3.0">
          <persistence-unit name="slotting">
            <properties>
              <property name="jakarta.persistence.jdbc.url" value="jdbc:oracle:thin:@//ora-wms01.corvane.internal:1521/WMSPRD"/>
              <property name="jakarta.persistence.jdbc.user" value="WMS_SLOTTING"/>
              <property name="jakarta.persistence.jdbc.password" value="{V}"/>
            </properties>
          </persistence-unit>
        </persistence>
        """,
    ),
    _t(
        "wms/tomcat/conf/context.xml",
        "h11_oracle_pw",
        True,
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <!-- yard-portal on tomcat-yard01; JNDI datasources -->
        <Context>
          <WatchedResource>WEB-INF/web.xml</WatchedResource>
          <Resource name="jdbc/YardDS" auth="Container" type="javax.sql.DataSource"
                    driverClassName="oracle.jdbc.OracleDriver"
                    url="jdbc:oracle:thin:@ora-wms01.corvane.internal:1521:WMSPRD"
                    username="yard_portal" password="{V}"
                    maxTotal="30" maxIdle="10" validationQuery="select 1 from dual"/>
        </Context>
        """,
    ),
    _t(
        "wms/tomcat/conf/tomcat-users.xml",
        "h11_placeholder",
        False,
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <tomcat-users xmlns="http://tomcat.apache.org/xml" version="1.0">
          <!-- real manager credentials are written by the ansible role tomcat_yard at deploy time -->
          <role rolename="manager-gui"/>
          <user username="yard-admin" password="{V}" roles="manager-gui"/>
        </tomcat-users>
        """,
    ),
    _t(
        "wms/inventory-service/src/test/java/com/corvane/wms/InventoryQaSmokeIT.java",
        "h11_weak_pw",
        True,
        """
        package com.corvane.wms;

        import java.sql.Connection;
        import java.sql.DriverManager;
        import org.junit.jupiter.api.Tag;
        import org.junit.jupiter.api.Test;

        @Tag("qa-smoke")
        class InventoryQaSmokeIT {
            // runs against the shared QA instance from the qa-smoke Jenkins job
            private static final String URL =
                "jdbc:sqlserver://qa-sql02.corvane.internal:1433;databaseName=WMS_QA;encrypt=false";

            @Test
            void slotsTableIsReachable() throws Exception {
                try (Connection c = DriverManager.getConnection(URL, "wms_qa", "{V}")) {
                    c.createStatement().executeQuery("select top 1 * from slots");
                }
            }
        }
        """,
    ),
    _t(
        "wms/inventory-service/src/test/java/com/corvane/wms/SlotRepositoryTest.java",
        "h11_test_fake",
        False,
        """
        package com.corvane.wms;

        import org.testcontainers.containers.MSSQLServerContainer;
        import org.testcontainers.junit.jupiter.Container;
        import org.testcontainers.junit.jupiter.Testcontainers;

        @Testcontainers
        class SlotRepositoryTest {
            @Container
            static MSSQLServerContainer<?> db = new MSSQLServerContainer<>("mcr.microsoft.com/mssql/server:2022-latest")
                .acceptLicense();

            static final String API_TOKEN = "{V}";   // WireMock stub for the label printer API
        }
        """,
    ),
    _t(
        "wms/legacy/web.config",
        "h11_pw",
        True,
        """
        <?xml version="1.0" encoding="utf-8"?>
        <configuration>
          <connectionStrings>
            <add name="WmsDb" connectionString="Data Source=sqlwms01;Initial Catalog=WMS_PROD;User ID=wms_web;Password={V};" providerName="System.Data.SqlClient" />
          </connectionStrings>
          <appSettings>
            <add key="UpsUserId" value="corvaneups" />
            <add key="UpsPassword" value="{V2}" />
            <add key="LabelPrinterShare" value="\\\\dockprint01\\zebra" />
          </appSettings>
        </configuration>
        """,
    ),
    _t(
        "wms/legacy/web.Release.config",
        "h11_dpapi_cipher",
        False,
        """
        <?xml version="1.0" encoding="utf-8"?>
        <configuration>
          <connectionStrings configProtectionProvider="DataProtectionConfigurationProvider">
            <EncryptedData>
              <CipherData>
                <CipherValue>{V}</CipherValue>
              </CipherData>
            </EncryptedData>
          </connectionStrings>
          <appSettings configProtectionProvider="DataProtectionConfigurationProvider">
            <EncryptedData>
              <CipherData>
                <CipherValue>{V2}</CipherValue>
              </CipherData>
            </EncryptedData>
          </appSettings>
        </configuration>
        """,
    ),
    _t(
        "wms/db/seed/operators.sql",
        "h11_bcrypt",
        False,
        """
        -- handheld operator accounts for the Leipzig cross-dock (LEJ)
        INSERT INTO operators (badge_no, display_name, site, pin_hash) VALUES
          ('LEJ-0412', 'Kowalski, M.', 'LEJ', '{V}'),
          ('LEJ-0413', 'Brandt, S.',   'LEJ', '{V2}'),
          ('LEJ-0420', 'Okafor, T.',   'LEJ', '{V3}');
        """,
    ),
    _t(
        "wms/db/seed/portal_users.sql",
        "h11_argon2",
        False,
        """
        INSERT INTO portal_user (email, role, password_hash, created_at) VALUES
          ('dispatch.lej@corvane.com', 'DISPATCH', '{V}', now()),
          ('yard.ord@corvane.com',     'YARD',     '{V2}', now());
        """,
    ),
    _t(
        "wms/WmsService/Properties/launchSettings.json",
        "h11_uuid",
        False,
        """
        {
          "profiles": {
            "WmsService": {
              "commandName": "Project",
              "applicationUrl": "https://localhost:7081",
              "environmentVariables": { "ASPNETCORE_ENVIRONMENT": "Development" }
            }
          },
          "userSecretsId": "{V}"
        }
        """,
    ),
]

TEMPLATES += [
    # ================================================================ handheld scanner apps
    _t(
        "scanner-android/app/build.gradle.kts",
        "h11_pw",
        True,
        """
        plugins {
            id("com.android.application")
            id("org.jetbrains.kotlin.android")
        }

        android {
            namespace = "com.corvane.scan"
            compileSdk = 34
            defaultConfig {
                applicationId = "com.corvane.scan"
                minSdk = 26
                versionCode = 412
                versionName = "4.12.0"
            }
            signingConfigs {
                create("release") {
                    storeFile = file("../keystore/corvane-scan-release.jks")
                    storePassword = "{V}"
                    keyAlias = "corvane-scan"
                    keyPassword = "{V2}"
                }
            }
            buildTypes {
                release {
                    isMinifyEnabled = true
                    signingConfig = signingConfigs.getByName("release")
                }
            }
        }
        """,
    ),
    _t(
        "scanner-android/app/build.gradle.kts",
        "h11_kt_ref",
        False,
        """
        import java.util.Properties

        val keystoreProperties = Properties().apply {
            val f = rootProject.file("keystore.properties")
            if (f.exists()) load(f.inputStream())
        }

        android {
            signingConfigs {
                create("release") {
                    storeFile = file(System.getenv("KEYSTORE_PATH") ?: "../keystore/debug.jks")
                    storePassword = {V}
                    keyAlias = "corvane-scan"
                    keyPassword = {V2}
                }
            }
        }
        """,
    ),
    _t(
        "scanner-android/keystore.properties",
        "h11_pw",
        True,
        """
        # DO NOT COMMIT (committed by accident in SCAN-311, rotate!)
        storeFile=../keystore/corvane-scan-release.jks
        storePassword={V}
        keyAlias=corvane-scan
        keyPassword={V}
        """,
    ),
    _t(
        "scanner-android/local.properties",
        "h11_gcp_api_key",
        True,
        """
        ## This file is automatically generated by Android Studio.
        # Do not modify this file -- YOUR CHANGES WILL BE ERASED!
        sdk.dir=/Users/rhernandez/Library/Android/sdk
        MAPS_API_KEY={V}
        """,
    ),
    _t(
        "scanner-android/app/src/main/AndroidManifest.xml",
        "h11_gradle_placeholder",
        False,
        """
        <?xml version="1.0" encoding="utf-8"?>
        <manifest xmlns:android="http://schemas.android.com/apk/res/android">
            <uses-permission android:name="android.permission.CAMERA" />
            <application
                android:name=".ScanApp"
                android:label="@string/app_name">
                <meta-data
                    android:name="com.google.android.geo.API_KEY"
                    android:value="{V}" />
                <activity android:name=".ui.LoginActivity" android:exported="true" />
            </application>
        </manifest>
        """,
    ),
    _t(
        "scanner-android/app/src/main/res/values/strings.xml",
        "h11_ui_text",
        False,
        """
        <?xml version="1.0" encoding="utf-8"?>
        <resources>
            <string name="app_name">Corvane Scan</string>
            <string name="login_badge_hint">Badge number</string>
            <string name="login_password_hint">{V}</string>
            <string name="login_password_error">{V2}</string>
            <string name="scan_pallet">Scan pallet label</string>
        </resources>
        """,
    ),
    _t(
        "scanner-android/app/src/main/java/com/corvane/scan/data/SessionStore.kt",
        "h11_key_name",
        False,
        """
        package com.corvane.scan.data

        import android.content.SharedPreferences

        class SessionStore(private val prefs: SharedPreferences) {
            companion object {
                private const val KEY_TOKEN = "{V}"
                private const val KEY_BADGE = "badge_no"
            }

            var token: String?
                get() = prefs.getString(KEY_TOKEN, null)
                set(value) = prefs.edit().putString(KEY_TOKEN, value).apply()
        }
        """,
    ),
    _t(
        "scanner-android/app/src/main/java/com/corvane/scan/net/TrackingClient.kt",
        "h11_api_key",
        True,
        """
        package com.corvane.scan.net

        import okhttp3.Interceptor
        import okhttp3.OkHttpClient

        object TrackingClient {
            // TODO(SCAN-288): move to the device provisioning flow
            private const val API_KEY = "{V}"

            val http: OkHttpClient = OkHttpClient.Builder()
                .addInterceptor(Interceptor { chain ->
                    chain.proceed(
                        chain.request().newBuilder()
                            .header("Authorization", "Bearer $API_KEY")
                            .build()
                    )
                })
                .build()
        }
        """,
    ),
    _t(
        "scanner-android/app/src/test/java/com/corvane/scan/net/TrackingClientTest.kt",
        "h11_test_fake",
        False,
        """
        package com.corvane.scan.net

        import okhttp3.mockwebserver.MockResponse
        import okhttp3.mockwebserver.MockWebServer
        import org.junit.Test

        class TrackingClientTest {
            private val server = MockWebServer()

            @Test
            fun sendsBearer() {
                server.enqueue(MockResponse().setBody("{\\"status\\":\\"IN_TRANSIT\\"}"))
                val token = "{V}"
                val req = buildRequest(server.url("/v2/shipments/1").toString(), token)
                assert(req.header("Authorization") == "Bearer $token")
            }
        }
        """,
    ),
    _t(
        "scanner-android/app/schemas/com.corvane.scan.data.ScanDatabase/7.json",
        "h11_md5",
        False,
        """
        {
          "formatVersion": 1,
          "database": {
            "version": 7,
            "identityHash": "{V}",
            "entities": [
              { "tableName": "pending_scans", "createSql": "CREATE TABLE IF NOT EXISTS `${TABLE_NAME}` (`id` INTEGER NOT NULL, `barcode` TEXT NOT NULL, PRIMARY KEY(`id`))" }
            ],
            "setupQueries": [
              "INSERT OR REPLACE INTO room_master_table (id,identity_hash) VALUES(42, '{V}')"
            ]
          }
        }
        """,
    ),
    _t(
        "scanner-android/docs/signing.md",
        "h11_fpr_colon",
        False,
        """
        # Release signing

        The upload key lives in the `corvane-scan-release.jks` keystore in Keeper
        (folder *Mobile*). Play App Signing holds the app signing key.

        Fingerprints to register with Google Maps and Firebase:

        - upload key SHA-1: `{V}`
        - app signing key SHA-256: `{V2}`

        Check with `keytool -list -v -keystore corvane-scan-release.jks`.
        """,
    ),
    _t(
        "CorvaneScan.Xamarin/CorvaneScan.Android/CorvaneScan.Android.csproj",
        "h11_pw",
        True,
        """
        <Project Sdk="Microsoft.NET.Sdk">
          <PropertyGroup>
            <TargetFramework>net8.0-android</TargetFramework>
            <ApplicationId>com.corvane.scan.legacy</ApplicationId>
            <ApplicationVersion>318</ApplicationVersion>
          </PropertyGroup>
          <PropertyGroup Condition="'$(Configuration)' == 'Release'">
            <AndroidKeyStore>true</AndroidKeyStore>
            <AndroidSigningKeyStore>..\\keys\\corvane-legacy.keystore</AndroidSigningKeyStore>
            <AndroidSigningStorePass>{V}</AndroidSigningStorePass>
            <AndroidSigningKeyAlias>corvane</AndroidSigningKeyAlias>
            <AndroidSigningKeyPass>{V2}</AndroidSigningKeyPass>
          </PropertyGroup>
        </Project>
        """,
    ),
    _t(
        "CorvaneScan.Xamarin/CorvaneScan.Android/CorvaneScan.Android.csproj",
        "h11_msbuild_ref",
        False,
        """
        <Project Sdk="Microsoft.NET.Sdk">
          <PropertyGroup Condition="'$(Configuration)' == 'Release'">
            <AndroidKeyStore>true</AndroidKeyStore>
            <AndroidSigningKeyStore>$(KeystorePath)</AndroidSigningKeyStore>
            <AndroidSigningStorePass>{V}</AndroidSigningStorePass>
            <AndroidSigningKeyAlias>corvane</AndroidSigningKeyAlias>
            <AndroidSigningKeyPass>{V2}</AndroidSigningKeyPass>
          </PropertyGroup>
        </Project>
        """,
    ),
    _t(
        "CorvaneScan.Xamarin/CorvaneScan.Core/Services/ManifestUploader.cs",
        "h11_pw",
        True,
        """
        using Renci.SshNet;

        namespace CorvaneScan.Core.Services
        {
            public class ManifestUploader
            {
                const string Host = "sftp.corvane.com";
                const string User = "scanner_upload";
                const string Password = "{V}";

                public void Upload(string localPath)
                {
                    using var client = new SftpClient(Host, 22, User, Password);
                    client.Connect();
                    using var fs = System.IO.File.OpenRead(localPath);
                    client.UploadFile(fs, "/inbound/manifests/" + System.IO.Path.GetFileName(localPath));
                }
            }
        }
        """,
    ),
    _t(
        "CorvaneScan.Xamarin/CorvaneScan.Core/Constants.cs",
        "h11_api_key",
        True,
        """
        namespace CorvaneScan.Core
        {
            public static class Constants
            {
                public const string TrackingBaseUrl = "https://track-api.corvane.com/v2/";
                public const string TrackingApiKey = "{V}";
                public const int ScanTimeoutMs = 4000;
            }
        }
        """,
    ),
    _t(
        "CorvaneScan.Xamarin/CorvaneScan.Core/Constants.cs",
        "h11_placeholder",
        False,
        """
        namespace CorvaneScan.Core
        {
            public static class Constants
            {
                public const string TrackingBaseUrl = "https://track-api.corvane.com/v2/";
                // replaced by the build pipeline (scripts/inject-secrets.ps1) before packaging
                public const string TrackingApiKey = "{V}";
            }
        }
        """,
    ),
    _t(
        "scanner-android/app/src/main/assets/device_config.json",
        "h11_imei",
        False,
        """
        {
          "site": "LEJ",
          "allowedDevices": [
            { "model": "Zebra TC52", "imei": "{V}" },
            { "model": "Zebra TC52", "imei": "{V2}" },
            { "model": "Honeywell CT40", "imei": "{V3}" }
          ]
        }
        """,
    ),
]

TEMPLATES += [
    # ================================================================ EDI / AS2 / SFTP partner feeds
    _t(
        "edi/openas2/config/config.xml",
        "h11_pw",
        True,
        """
        <openas2>
          <properties storageBaseDir="%home%/../data" log_date_format="yyyy-MM-dd HH:mm:ss.SSS"/>
          <certificates classname="org.openas2.cert.PKCS12CertificateFactory"
                        filename="%home%/as2_certs.p12"
                        password="{V}"
                        interval="300"/>
          <partnerships classname="org.openas2.partner.XMLPartnershipFactory"
                        filename="%home%/partnerships.xml"/>
          <processor classname="org.openas2.processor.DefaultProcessor">
            <module classname="org.openas2.processor.receiver.AS2ReceiverModule" port="10080"/>
          </processor>
        </openas2>
        """,
    ),
    _t(
        "edi/openas2/config/partnerships.xml",
        "h11_fpr_colon",
        False,
        """
        <partnerships>
          <partner name="corvane" as2_id="CORVANEFRT" x509_alias="corvane-as2-2024" email="edi@corvane.com"/>
          <partner name="kn" as2_id="KNUSA01" x509_alias="kn-as2" email="edi.support@kuehne-nagel.com"/>
          <!-- cert pinning: SHA-1 of the partner signing certificate, checked by ops/check_as2_certs.py -->
          <partnership name="corvane-to-kn">
            <sender name="corvane"/>
            <receiver name="kn"/>
            <attribute name="as2_url" value="https://as2.kuehne-nagel.com:4080/as2"/>
            <attribute name="sign" value="SHA256"/>
            <attribute name="encrypt" value="AES256"/>
            <attribute name="receiver_cert_fingerprint" value="{V}"/>
          </partnership>
        </partnerships>
        """,
    ),
    _t(
        "edi/as2/keys/corvane-as2-2024.key",
        "h11_pkcs8_pem",
        True,
        """
        {V}
        """,
    ),
    _t(
        "edi/as2/keys/corvane-as2-2024.enc.key",
        "h11_encrypted_pem",
        False,
        """
        {V}
        """,
    ),
    _t(
        "edi/as2/partners/maersk-as2-signing.pem",
        "h11_cert",
        False,
        """
        # Maersk AS2 signing certificate, received by email from edi-onboarding 2024-03-04
        # valid until 2026-03-31, fingerprint checked by phone with their team
        {V}
        """,
    ),
    _t(
        "edi/as2/partners/dbschenker-encryption.asc",
        "h11_pgp_pub",
        False,
        """
        {V}
        """,
    ),
    _t(
        "edi/sftp/partners.yaml",
        "h11_pw",
        True,
        """
        # inbound/outbound SFTP drops polled by edi-poller (see edi/poller/README.md)
        partners:
          - name: kuehne-nagel
            host: sftp.kn-portal.com
            port: 22
            username: corvane_edi
            password: {V}
            inbound: /out/856
            outbound: /in/214
          - name: dhl-global-forwarding
            host: sftp.dhl-edi.net
            username: CORVANE01
            password: "{V2}"
            inbound: /outbox
            schedule: "*/10 * * * *"
        """,
    ),
    _t(
        "edi/sftp/partners.yaml",
        "h11_vault_ref",
        False,
        """
        partners:
          - name: kuehne-nagel
            host: sftp.kn-portal.com
            username: corvane_edi
            password_ref: "{V}"
          - name: dhl-global-forwarding
            host: sftp.dhl-edi.net
            username: CORVANE01
            password_ref: "{V2}"
        """,
    ),
    _t(
        "edi/scripts/pull_dhl_856.sh",
        "h11_pw",
        True,
        """
        #!/bin/sh
        # quick fix until the poller supports DHL's new host (EDI-977)
        cd /data/edi/inbound/dhl || exit 1
        sshpass -p '{V}' sftp -oBatchMode=no -oStrictHostKeyChecking=yes CORVANE01@sftp.dhl-edi.net <<EOS
        cd /outbox
        mget *.856
        rm *.856
        bye
        EOS
        """,
    ),
    _t(
        "edi/scripts/Sync-SchenkerDrop.ps1",
        "h11_ps_ref",
        False,
        """
        # Pulls DB Schenker 214 status files into the EDI staging share
        Import-Module Posh-SSH
        $user = 'corvane_edi'
        $secure = {V}
        $cred = New-Object System.Management.Automation.PSCredential($user, $secure)
        $session = New-SFTPSession -ComputerName ftp.dbschenker.com -Credential $cred -AcceptKey
        Get-SFTPChildItem -SessionId $session.SessionId -Path '/outbound' |
            ForEach-Object { Get-SFTPItem -SessionId $session.SessionId -Path $_.FullName -Destination '\\\\edi01\\staging\\schenker' }
        """,
    ),
    _t(
        "edi/scripts/Sync-KnDrop.ps1",
        "h11_pw",
        True,
        """
        Import-Module Posh-SSH
        $pw = ConvertTo-SecureString "{V}" -AsPlainText -Force
        $cred = New-Object System.Management.Automation.PSCredential('corvane_edi', $pw)
        $s = New-SFTPSession -ComputerName sftp.kn-portal.com -Credential $cred
        Get-SFTPItem -SessionId $s.SessionId -Path '/out/856' -Destination 'D:\\edi\\inbound\\kn'
        """,
    ),
    _t(
        "edi/deploy/keys/sftp_kn_ed25519",
        "h11_openssh_key",
        True,
        """
        {V}
        """,
    ),
    _t(
        "edi/deploy/keys/sftp_kn_ed25519.pub",
        "h11_ssh_pub",
        False,
        """
        {V}
        """,
    ),
    _t(
        "edi/deploy/known_hosts",
        "h11_known_hosts",
        False,
        """
        {V}
        {V2}
        {V3}
        """,
    ),
    _t(
        "edi/samples/856_asn_sample.edi",
        "h11_edi_id",
        False,
        """
        ISA*00*          *00*          *ZZ*{V}*ZZ*{V2}*240311*0930*U*00401*000004711*0*P*>~
        GS*SH*CORVANEFRT*KNUSA01*20240311*0930*4711*X*004010~
        ST*856*0001~
        BSN*00*SHP240311001*20240311*0930~
        HL*1**S~
        TD5*B*2*CVNA*A~
        REF*AW*176-45812376~
        SE*7*0001~
        GE*1*4711~
        IEA*1*000004711~
        """,
    ),
    _t(
        "edi/winscp/filezilla-sitemanager.xml",
        "h11_b64_pw",
        True,
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <FileZilla3 version="3.66.1" platform="windows">
          <Servers>
            <Server>
              <Host>sftp.kn-portal.com</Host>
              <Port>22</Port>
              <Protocol>1</Protocol>
              <Type>0</Type>
              <User>corvane_edi</User>
              <Pass encoding="base64">{V}</Pass>
              <Logontype>1</Logontype>
              <Name>KN prod drop</Name>
            </Server>
          </Servers>
        </FileZilla3>
        """,
    ),
    _t(
        "edi/As2Gateway/Transport/PartnerPoster.cs",
        "h11_pw",
        True,
        """
        using System.Net;
        using System.Net.Http;

        namespace Corvane.Edi.As2Gateway.Transport
        {
            internal static class PartnerPoster
            {
                // Maersk requires HTTP basic auth on top of AS2 signing
                internal static HttpClient ForMaersk() =>
                    new HttpClient(new HttpClientHandler
                    {
                        Credentials = new NetworkCredential("CORVANEAIR", "{V}")
                    });
            }
        }
        """,
    ),
    _t(
        "edi/docs/partner-onboarding.md",
        "h11_doc_pw",
        False,
        """
        # Onboarding a new EDI partner

        1. Exchange AS2 ids and certificates (see `edi/as2/partners/`).
        2. Test against our sandbox receiver. The sample commands below use the vendor's
           documentation sandbox, not ours:

           ```
           curl -u demo:{V} -H "AS2-From: TESTPARTNER" -H "AS2-To: CORVANEFRT" \\
                --data-binary @sample.edi https://as2.example.com/receive
           ```
        3. Ask ops to create the production SFTP account (the password goes to Keeper,
           never into this repo).
        """,
    ),
    _t(
        "edi/poller/src/main/resources/application.properties",
        "h11_jasypt",
        False,
        """
        # values encrypted with jasypt; the key comes from JASYPT_ENCRYPTOR_PASSWORD at runtime
        poller.partners.kn.host=sftp.kn-portal.com
        poller.partners.kn.username=corvane_edi
        poller.partners.kn.password={V}
        poller.partners.dhl.host=sftp.dhl-edi.net
        poller.partners.dhl.password={V2}
        jasypt.encryptor.algorithm=PBEWITHHMACSHA512ANDAES_256
        """,
    ),
    _t(
        "edi/poller/src/main/resources/application-local.properties",
        "h11_weak_pw",
        True,
        """
        # local run against the shared EDI UAT box (edi-uat01), not a container
        poller.partners.kn.host=edi-uat01.corvane.internal
        poller.partners.kn.username=edi_uat
        poller.partners.kn.password={V}
        """,
    ),
]

TEMPLATES += [
    # ================================================================ tracking API: Go
    _t(
        "tracking-api/config/config.prod.yaml",
        "h11_b64_32",
        True,
        """
        http:
          addr: ":8080"
          read_timeout: 15s
        auth:
          issuer: https://auth.corvane.com
          audience: tracking-api
          hs256_secret: "{V}"
        webhooks:
          partner_signing_secret: "{V2}"
        carriers:
          poll_interval: 5m
        """,
    ),
    _t(
        "tracking-api/internal/webhook/verify.go",
        "h11_hmac_hex",
        True,
        """
        package webhook

        import (
        	"crypto/hmac"
        	"crypto/sha256"
        	"encoding/hex"
        	"net/http"
        )

        // samsaraSecret signs Samsara vehicle-location webhooks (set in the Samsara dashboard).
        var samsaraSecret = []byte("{V}")

        func Verify(r *http.Request, body []byte) bool {
        	mac := hmac.New(sha256.New, samsaraSecret)
        	mac.Write(body)
        	want := hex.EncodeToString(mac.Sum(nil))
        	return hmac.Equal([]byte(want), []byte(r.Header.Get("X-Samsara-Signature")))
        }
        """,
    ),
    _t(
        "tracking-api/internal/webhook/verify.go",
        "h11_go_secret_ref",
        False,
        """
        package webhook

        import (
        	"crypto/hmac"
        	"crypto/sha256"
        	"os"
        )

        func mustEnv(k string) string {
        	v := os.Getenv(k)
        	if v == "" {
        		panic(k + " not set")
        	}
        	return v
        }

        var secret = []byte({V})

        func sign(body []byte) []byte {
        	m := hmac.New(sha256.New, secret)
        	m.Write(body)
        	return m.Sum(nil)
        }
        """,
    ),
    _t(
        "tracking-api/internal/webhook/verify_test.go",
        "h11_test_fake",
        False,
        """
        package webhook

        import "testing"

        const testSecret = "{V}"

        func TestSignRoundTrip(t *testing.T) {
        	t.Setenv("WEBHOOK_SECRET", testSecret)
        	body := []byte(`{"vehicleId":"281474977075123","lat":51.42,"lon":12.23}`)
        	if len(sign(body)) != 32 {
        		t.Fatal("bad mac length")
        	}
        }
        """,
    ),
    _t(
        "tracking-api/internal/webhook/fixtures_test.go",
        "h11_sha256",
        False,
        """
        package webhook

        // Signatures recorded from Samsara's sandbox for the fixtures in testdata/,
        // computed with the sandbox secret (not stored here).
        var recorded = map[string]string{
        	"testdata/location_update.json": "{V}",
        	"testdata/engine_off.json":      "{V2}",
        }
        """,
    ),
    _t(
        "tracking-api/cmd/backfill/main.go",
        "h11_url_pw",
        True,
        """
        package main

        import (
        	"database/sql"
        	"log"

        	_ "github.com/microsoft/go-mssqldb"
        )

        func main() {
        	// one-off backfill for TRK-5512, run from bastion
        	dsn := "sqlserver://tracking_svc:{V}@sql-trk01.corvane.internal:1433?database=tracking&encrypt=true"
        	db, err := sql.Open("sqlserver", dsn)
        	if err != nil {
        		log.Fatal(err)
        	}
        	defer db.Close()
        	if _, err := db.Exec("EXEC dbo.backfill_events @from = '2024-01-01'"); err != nil {
        		log.Fatal(err)
        	}
        }
        """,
    ),
    _t(
        "tracking-api/go.sum",
        "h11_tf_hash",
        False,
        """
        github.com/eclipse/paho.mqtt.golang v1.4.3 {V}
        github.com/eclipse/paho.mqtt.golang v1.4.3/go.mod {V2}
        github.com/microsoft/go-mssqldb v1.7.0 {V3}
        github.com/microsoft/go-mssqldb v1.7.0/go.mod {V4}
        """,
    ),
    _t(
        "tracking-api/.env",
        "h11_dd_api",
        True,
        """
        APP_ENV=production
        DD_SITE=datadoghq.eu
        DD_API_KEY={V}
        DD_SERVICE=tracking-api
        DD_ENV=prod
        """,
    ),
    _t(
        "tracking-api/.env.example",
        "h11_env_placeholder",
        False,
        """
        APP_ENV=development
        DD_SITE=datadoghq.eu
        DD_API_KEY={V}
        TRACKING_DB_PASSWORD={V2}
        SAMSARA_API_TOKEN={V3}
        FEDEX_CLIENT_SECRET={V4}
        """,
    ),
    _t(
        "tracking-api/README.md",
        "h11_jwt",
        True,
        """
        # tracking-api

        Shipment and telematics tracking for Corvane Freight & Air.

        ## Smoke test against prod

        ```
        curl -s https://track-api.corvane.com/v2/shipments/176-45812376 \\
          -H 'Authorization: Bearer {V}' | jq .
        ```

        (token minted for the customer portal, valid for a year)
        """,
    ),
    _t(
        "tracking-api/docs/authentication.md",
        "h11_placeholder",
        False,
        """
        # Authentication

        Every request needs a bearer token issued by `auth.corvane.com`:

        ```
        curl https://track-api.corvane.com/v2/shipments/{awb} \\
          -H "Authorization: Bearer {V}"
        ```

        Partners get a client id and secret through the partner portal; exchange them at
        `POST /oauth/token` with `grant_type=client_credentials`.
        """,
    ),
    _t(
        "tracking-api/api/openapi.yaml",
        "h11_awb",
        False,
        """
        openapi: 3.0.3
        info:
          title: Corvane Tracking API
          version: 2.4.0
        paths:
          /v2/shipments/{awb}:
            get:
              security:
                - bearerAuth: []
              parameters:
                - name: awb
                  in: path
                  required: true
                  schema: { type: string, pattern: '^[0-9]{3}-[0-9]{8}$' }
                  example: {V}
        components:
          securitySchemes:
            bearerAuth:
              type: http
              scheme: bearer
              bearerFormat: JWT
          examples:
            shipment:
              value: { awb: "{V2}", status: IN_TRANSIT }
        """,
    ),
    _t(
        "tracking-api/internal/carriers/testdata/shipments.json",
        "h11_tracking",
        False,
        """
        [
          {"carrier": "ups", "trackingNumber": "{V}", "status": "DELIVERED"},
          {"carrier": "fedex", "trackingNumber": "{V2}", "status": "IN_TRANSIT"},
          {"carrier": "ups", "trackingNumber": "{V3}", "status": "EXCEPTION"}
        ]
        """,
    ),
    # ================================================================ tracking API: Node / TS
    _t(
        "tracking-node/.env.production",
        "h11_fedex_env_pair",
        True,
        """
        NODE_ENV=production
        PORT=3000
        FEDEX_API_URL=https://apis.fedex.com
        {V}
        FEDEX_ACCOUNT_NUMBER=740561073
        """,
    ),
    _t(
        "tracking-node/src/carriers/ups.ts",
        "h11_ups_secret",
        True,
        """
        import axios from 'axios';

        const UPS_CLIENT_ID = process.env.UPS_CLIENT_ID!;
        const UPS_CLIENT_SECRET = '{V}';

        export async function upsToken(): Promise<string> {
          const basic = Buffer.from(`${UPS_CLIENT_ID}:${UPS_CLIENT_SECRET}`).toString('base64');
          const res = await axios.post(
            'https://onlinetools.ups.com/security/v1/oauth/token',
            'grant_type=client_credentials',
            { headers: { Authorization: `Basic ${basic}`, 'Content-Type': 'application/x-www-form-urlencoded' } },
          );
          return res.data.access_token;
        }
        """,
    ),
    _t(
        "tracking-node/src/carriers/ups.ts",
        "h11_node_ref",
        False,
        """
        import axios from 'axios';
        import config from 'config';
        import { getSecret } from '../secrets';

        export async function upsToken(): Promise<string> {
          const clientId = config.get<string>('carriers.ups.clientId');
          const clientSecret = {V};
          const basic = Buffer.from(`${clientId}:${clientSecret}`).toString('base64');
          const res = await axios.post('https://onlinetools.ups.com/security/v1/oauth/token',
            'grant_type=client_credentials', { headers: { Authorization: `Basic ${basic}` } });
          return res.data.access_token;
        }
        """,
    ),
    _t(
        "tracking-node/test/carriers/fedex.test.ts",
        "h11_test_fake",
        False,
        """
        import nock from 'nock';
        import { fedexTrack } from '../../src/carriers/fedex';

        describe('fedexTrack', () => {
          beforeEach(() => {
            nock('https://apis-sandbox.fedex.com')
              .post('/oauth/token')
              .reply(200, { access_token: '{V}', token_type: 'bearer', expires_in: 3599 });
          });

          it('maps delivered events', async () => {
            process.env.FEDEX_CLIENT_SECRET = '{V2}';
            const res = await fedexTrack('794644790132');
            expect(res.status).toBe('DELIVERED');
          });
        });
        """,
    ),
    _t(
        "tracking-node/config/production.json",
        "h11_mapbox_sk",
        True,
        """
        {
          "server": { "port": 3000 },
          "mapbox": {
            "username": "corvane",
            "accessToken": "{V}",
            "tilesetUpload": true
          },
          "geocoder": "here"
        }
        """,
    ),
    _t(
        "tracking-web/public/index.html",
        "h11_mapbox_pk",
        False,
        """
        <!doctype html>
        <html lang="en">
        <head>
          <meta charset="utf-8">
          <title>Corvane | Track your shipment</title>
          <link href="https://api.mapbox.com/mapbox-gl-js/v3.2.0/mapbox-gl.css" rel="stylesheet">
          <script src="https://api.mapbox.com/mapbox-gl-js/v3.2.0/mapbox-gl.js"></script>
        </head>
        <body>
          <div id="map" style="height: 480px"></div>
          <script>
            // public token, URL-restricted to track.corvane.com
            mapboxgl.accessToken = '{V}';
            const map = new mapboxgl.Map({ container: 'map', style: 'mapbox://styles/mapbox/light-v11' });
          </script>
        </body>
        </html>
        """,
    ),
    _t(
        "tracking-node/scripts/geocode-backfill.js",
        "h11_here_key",
        True,
        """
        // node scripts/geocode-backfill.js < consignees.csv
        const readline = require('readline');
        const HERE_API_KEY = '{V}';

        const rl = readline.createInterface({ input: process.stdin });
        rl.on('line', async (line) => {
          const [id, address] = line.split(';');
          const url = `https://geocode.search.hereapi.com/v1/geocode?q=${encodeURIComponent(address)}&apiKey=${HERE_API_KEY}`;
          const res = await fetch(url);
          const body = await res.json();
          console.log(id, body.items?.[0]?.position);
        });
        """,
    ),
    _t(
        "tracking-web/src/config.ts",
        "h11_here_app_id",
        False,
        """
        export const config = {
          apiBase: import.meta.env.VITE_API_BASE ?? 'https://track-api.corvane.com',
          here: {
            // app id only; the maps key is fetched from /v2/map-session at runtime
            appId: '{V}',
          },
          pollSeconds: 30,
        };
        """,
    ),
    _t(
        "tracking-node/src/geo/googleDistance.ts",
        "h11_gcp_api_key",
        True,
        """
        import { Client } from '@googlemaps/google-maps-services-js';

        const client = new Client({});
        const KEY = '{V}';

        export async function etaMinutes(origin: string, destination: string): Promise<number> {
          const r = await client.distancematrix({ params: { origins: [origin], destinations: [destination], key: KEY } });
          return Math.round((r.data.rows[0].elements[0].duration.value ?? 0) / 60);
        }
        """,
    ),
    _t(
        "tracking-node/.npmrc",
        "h11_github",
        True,
        """
        @corvane:registry=https://npm.pkg.github.com
        //npm.pkg.github.com/:_authToken={V}
        always-auth=true
        """,
    ),
    _t(
        "tracking-web/.npmrc",
        "h11_npm",
        True,
        """
        registry=https://registry.npmjs.org/
        //registry.npmjs.org/:_authToken={V}
        save-exact=true
        """,
    ),
    _t(
        "tracking-node/.npmrc.ci",
        "h11_npm_ref",
        False,
        """
        @corvane:registry=https://npm.pkg.github.com
        //npm.pkg.github.com/:_authToken={V}
        """,
    ),
    _t(
        "tracking-web/package-lock.json",
        "h11_sri",
        False,
        """
        {
          "name": "tracking-web",
          "version": "3.1.0",
          "lockfileVersion": 3,
          "packages": {
            "node_modules/mapbox-gl": {
              "version": "3.2.0",
              "resolved": "https://registry.npmjs.org/mapbox-gl/-/mapbox-gl-3.2.0.tgz",
              "integrity": "{V}"
            },
            "node_modules/axios": {
              "version": "1.6.8",
              "resolved": "https://registry.npmjs.org/axios/-/axios-1.6.8.tgz",
              "integrity": "{V2}"
            }
          }
        }
        """,
    ),
    _t(
        "tracking-node/src/auth/jwks.ts",
        "h11_public_pem",
        False,
        """
        import { createPublicKey } from 'crypto';

        // auth.corvane.com signing key (kid 2024-03), public half only
        const PEM = `{V}`;

        export const signingKey = createPublicKey(PEM);
        """,
    ),
]

TEMPLATES += [
    # ================================================================ Kubernetes / Helm
    _t(
        "tracking-api/deploy/k8s/secret.yaml",
        "h11_pw",
        True,
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: tracking-api-db
          namespace: tracking
        type: Opaque
        stringData:
          DB_USER: tracking_svc
          DB_PASSWORD: "{V}"
          REDIS_PASSWORD: "{V2}"
        """,
    ),
    _t(
        "telematics/deploy/k8s/mqtt-bridge-secret.yaml",
        "h11_b64_pw",
        True,
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: mqtt-bridge
          namespace: telematics
        type: Opaque
        data:
          username: dGVsZW1hdGljcy1icmlkZ2U=
          password: {V}
        """,
    ),
    _t(
        "tracking-api/deploy/k8s/deployment.yaml",
        "h11_secret_name",
        False,
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: tracking-api
        spec:
          replicas: 3
          template:
            spec:
              containers:
                - name: api
                  image: europe-docker.pkg.dev/corvane-prod/tracking/tracking-api:2.4.0
                  env:
                    - name: DB_PASSWORD
                      valueFrom:
                        secretKeyRef:
                          name: {V}
                          key: DB_PASSWORD
                    - name: DD_API_KEY
                      valueFrom:
                        secretKeyRef:
                          name: {V2}
                          key: api-key
        """,
    ),
    _t(
        "tracking-api/deploy/k8s/sealed-db.yaml",
        "h11_sealed",
        False,
        """
        apiVersion: bitnami.com/v1alpha1
        kind: SealedSecret
        metadata:
          name: tracking-api-db
          namespace: tracking
        spec:
          encryptedData:
            DB_PASSWORD: {V}
            REDIS_PASSWORD: {V2}
        """,
    ),
    _t(
        "tracking-api/deploy/k8s/external-secret.yaml",
        "h11_gcp_secret_path",
        False,
        """
        apiVersion: external-secrets.io/v1beta1
        kind: ExternalSecret
        metadata:
          name: carriers
        spec:
          refreshInterval: 1h
          secretStoreRef:
            kind: ClusterSecretStore
            name: gcp-secret-manager
          target:
            name: carriers
          data:
            - secretKey: FEDEX_CLIENT_SECRET
              remoteRef:
                key: {V}
            - secretKey: DB_PASSWORD
              remoteRef:
                key: {V2}
        """,
    ),
    _t(
        "charts/tracking-api/values-prod.yaml",
        "h11_dd_api",
        True,
        """
        replicaCount: 3
        image:
          tag: 2.4.0
        datadog:
          enabled: true
          site: datadoghq.eu
          apiKey: {V}
        ingress:
          host: track-api.corvane.com
        """,
    ),
    _t(
        "charts/tracking-api/values.yaml",
        "h11_placeholder",
        False,
        """
        replicaCount: 1
        datadog:
          enabled: false
          # set with --set datadog.apiKey=... or use existingSecret
          apiKey: "{V}"
          existingSecret: ""
        db:
          host: sql-trk01.corvane.internal
          password: "{V2}"
        """,
    ),
    _t(
        "charts/tracking-api/templates/secret.yaml",
        "h11_helm_ref",
        False,
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: {{ include "tracking.fullname" . }}-db
        type: Opaque
        data:
          DB_PASSWORD: {V}
        """,
    ),
    _t(
        "charts/datadog-agent/values-corvane.yaml",
        "h11_dd_placeholder",
        False,
        """
        datadog:
          site: datadoghq.eu
          apiKeyExistingSecret: datadog-secret
          secretBackend:
            command: /readsecret_multiple_providers.sh
          confd:
            sqlserver.yaml: |-
              instances:
                - host: sqlwms01.corvane.internal,1433
                  username: datadog
                  password: {V}
        """,
    ),
    _t(
        "telematics/deploy/k8s/configmap.yaml",
        "h11_mqtt_pw",
        True,
        """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: ingest-config
          namespace: telematics
        data:
          ingest.toml: |
            [mqtt]
            broker = "ssl://mqtt.corvane.com:8883"
            client_id = "ingest-01"
            username = "ingest"
            password = "{V}"

            [kafka]
            topic = "telematics.positions.v1"
        """,
    ),
    # ================================================================ Kafka
    _t(
        "integration/kafka/confluent-cloud.properties",
        "h11_confluent_secret",
        True,
        """
        # Confluent Cloud cluster lkc-7x2m9 (eu-west-1), service account sa-sapbridge
        bootstrap.servers=pkc-e8mp5.eu-west-1.aws.confluent.cloud:9092
        security.protocol=SASL_SSL
        sasl.mechanism=PLAIN
        sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="ZQ4J7TXKD2M3VNHA" password="{V}";
        client.dns.lookup=use_all_dns_ips
        acks=all
        """,
    ),
    _t(
        "integration/kafka/client-scram.properties",
        "h11_pw",
        True,
        """
        bootstrap.servers=kafka-1.corvane.internal:9093,kafka-2.corvane.internal:9093
        security.protocol=SASL_SSL
        sasl.mechanism=SCRAM-SHA-512
        sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\
            username="sap-bridge" \\
            password="{V}";
        ssl.truststore.location=/etc/kafka/secrets/truststore.jks
        ssl.truststore.password={V2}
        """,
    ),
    _t(
        "integration/kafka/client-scram.properties.tmpl",
        "h11_kafka_ref",
        False,
        """
        bootstrap.servers=kafka-1.corvane.internal:9093
        security.protocol=SASL_SSL
        sasl.mechanism=SCRAM-SHA-512
        config.providers=file,env,directory
        sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="sap-bridge" password="{V}";
        ssl.truststore.password={V2}
        """,
    ),
    _t(
        "integration/kafka/connect/oracle-shipments-sink.json",
        "h11_oracle_pw",
        True,
        """
        {
          "name": "oracle-shipments-sink",
          "config": {
            "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
            "topics": "tracking.shipments.v2",
            "connection.url": "jdbc:oracle:thin:@ora-wms01.corvane.internal:1521/WMSPRD",
            "connection.user": "KAFKA_SINK",
            "connection.password": "{V}",
            "insert.mode": "upsert",
            "pk.mode": "record_key",
            "auto.create": "false"
          }
        }
        """,
    ),
    _t(
        "integration/kafka/connect/sqlserver-cdc-source.json",
        "h11_kafka_ref",
        False,
        """
        {
          "name": "wms-cdc",
          "config": {
            "connector.class": "io.debezium.connector.sqlserver.SqlServerConnector",
            "database.hostname": "sqlwms01.corvane.internal",
            "database.user": "debezium",
            "database.password": "{V}",
            "database.names": "WMS_PROD",
            "topic.prefix": "wms",
            "schema.history.internal.kafka.topic": "wms.schema-history"
          }
        }
        """,
    ),
    _t(
        "integration/kafka/schemas/shipment-event.avsc",
        "h11_uuid",
        False,
        """
        {
          "type": "record",
          "name": "ShipmentEvent",
          "namespace": "com.corvane.tracking",
          "doc": "schema registry id 1047; example eventId {V}",
          "fields": [
            {"name": "eventId", "type": {"type": "string", "logicalType": "uuid"}, "default": "{V2}"},
            {"name": "awb", "type": "string"},
            {"name": "status", "type": "string"}
          ]
        }
        """,
    ),
    # ================================================================ SAP integration
    _t(
        "sap-bridge/sapnwrfc.ini",
        "h11_pw",
        True,
        """
        DEST=PRD
        ASHOST=sap-prd-ci.corvane.internal
        SYSNR=00
        CLIENT=100
        USER=RFC_CORVANE
        PASSWD={V}
        LANG=EN
        TRACE=0

        DEST=QAS
        ASHOST=sap-qas-ci.corvane.internal
        SYSNR=10
        CLIENT=200
        USER=RFC_CORVANE
        PASSWD={V2}
        """,
    ),
    _t(
        "sap-bridge/src/main/resources/jco/PRD.jcoDestination",
        "h11_pw",
        True,
        """
        # PRD destination used by sap-bridge on intapp02
        jco.client.lang=EN
        jco.client.client=100
        jco.client.user=RFC_EDI
        jco.client.passwd={V}
        jco.client.sysnr=00
        jco.client.ashost=sap-prd-ci.corvane.internal
        jco.destination.pool_capacity=5
        """,
    ),
    _t(
        "sap-bridge/src/main/resources/application.properties",
        "h11_spring_ref",
        False,
        """
        sap.jco.ashost=sap-prd-ci.corvane.internal
        sap.jco.client=100
        sap.jco.user=RFC_EDI
        sap.jco.passwd={V}
        kafka.sasl.password={V2}
        """,
    ),
    _t(
        "sap-bridge/scripts/pull_deliveries.py",
        "h11_pw",
        True,
        """
        \"\"\"Pull outbound deliveries (LIKP/LIPS) for the cross-docks and push them to Kafka.\"\"\"
        from pyrfc import Connection

        conn = Connection(
            ashost="sap-prd-ci.corvane.internal",
            sysnr="00",
            client="100",
            user="RFC_EDI",
            passwd="{V}",
            lang="EN",
        )

        result = conn.call("BAPI_OUTB_DELIVERY_GET_LIST", IT_VSTEL=[{"SIGN": "I", "OPTION": "EQ", "LOW": "LEJ1"}])
        print(len(result["ET_DELIVERY_HEADER"]))
        """,
    ),
    _t(
        "sap-bridge/docs/handover.txt",
        "h11_pw",
        True,
        """
        SAP bridge handover (from Jonas, last day 29.02.)
        ==================================================

        PRD RFC user ....... RFC_EDI / {V}
        QAS RFC user ....... RFC_EDI / {V2}
        SAP GUI (my dialog user, please lock it) ..... JWEBER / {V3}

        Kafka topics: sap.deliveries.v1, sap.goods-movements.v1
        Restart: systemctl restart sap-bridge on intapp02
        """,
    ),
    _t(
        "sap-bridge/docs/handover-v2.txt",
        "h11_vault_ref",
        False,
        """
        SAP bridge handover (rev. 2, credentials removed after review)
        ===============================================================

        PRD RFC user ....... RFC_EDI   password: see {V}
        QAS RFC user ....... RFC_EDI   password: see {V2}

        Restart: systemctl restart sap-bridge on intapp02
        """,
    ),
]

TEMPLATES += [
    # ================================================================ IoT telematics / MQTT
    _t(
        "telematics/mosquitto/conf.d/bridge-cloud.conf",
        "h11_pw",
        True,
        """
        # depot broker -> cloud broker bridge (LEJ depot gateway)
        connection cloud-bridge
        address mqtt.corvane.com:8883
        bridge_protocol_version mqttv311
        remote_clientid lej-depot-gw
        remote_username depot-lej
        remote_password {V}
        bridge_cafile /etc/mosquitto/certs/ca.pem
        topic trucks/+/position out 1
        topic trucks/+/cmd in 1
        """,
    ),
    _t(
        "telematics/mosquitto/passwd",
        "h11_mosquitto_hash",
        False,
        """
        depot-lej:{V}
        depot-ord:{V2}
        ingest:{V3}
        """,
    ),
    _t(
        "telematics/mosquitto/acl",
        "h11_vin",
        False,
        """
        # per-truck topics, truck id = VIN
        user depot-lej
        topic readwrite trucks/{V}/#
        topic readwrite trucks/{V2}/#
        pattern read trucks/%c/cmd
        """,
    ),
    _t(
        "telematics/firmware/config/device.json",
        "h11_mqtt_pw",
        True,
        """
        {
          "device": { "model": "CVG-200", "fw": "3.8.1" },
          "gps": { "interval_s": 15 },
          "mqtt": {
            "host": "mqtt.corvane.com",
            "port": 8883,
            "tls": true,
            "username": "truck-gw",
            "password": "{V}",
            "topic": "trucks/${VIN}/position"
          }
        }
        """,
    ),
    _t(
        "telematics/firmware/config/device.schema.json",
        "h11_ui_text",
        False,
        """
        {
          "$schema": "https://json-schema.org/draft/2020-12/schema",
          "title": "CVG-200 device config",
          "type": "object",
          "properties": {
            "mqtt": {
              "type": "object",
              "properties": {
                "password": { "type": "string", "minLength": 16, "description": "{V}" }
              }
            }
          }
        }
        """,
    ),
    _t(
        "telematics/certs/truck-gw-0142.private.pem.key",
        "h11_rsa_pem",
        True,
        """
        {V}
        """,
    ),
    _t(
        "telematics/certs/truck-gw-0142.cert.pem",
        "h11_cert",
        False,
        """
        {V}
        """,
    ),
    _t(
        "telematics/certs/depot-gw-lej.key",
        "h11_ec_pem",
        True,
        """
        {V}
        """,
    ),
    _t(
        "telematics/gateway/main.go",
        "h11_mqtt_pw",
        True,
        """
        package main

        import (
        	"log"
        	"time"

        	mqtt "github.com/eclipse/paho.mqtt.golang"
        )

        func main() {
        	opts := mqtt.NewClientOptions().
        		AddBroker("ssl://mqtt.corvane.com:8883").
        		SetClientID("gw-ord-07").
        		SetUsername("depot-ord").
        		SetPassword("{V}").
        		SetKeepAlive(30 * time.Second)
        	c := mqtt.NewClient(opts)
        	if t := c.Connect(); t.Wait() && t.Error() != nil {
        		log.Fatal(t.Error())
        	}
        	select {}
        }
        """,
    ),
    _t(
        "telematics/gateway/broker.go",
        "h11_go_ref",
        False,
        """
        package main

        import (
        	"os"

        	mqtt "github.com/eclipse/paho.mqtt.golang"
        	"github.com/spf13/viper"
        )

        func brokerOptions(cfg Config) *mqtt.ClientOptions {
        	_ = os.Getenv
        	_ = viper.GetString
        	return mqtt.NewClientOptions().
        		AddBroker(cfg.Broker.URL).
        		SetUsername(cfg.Broker.Username).
        		SetPassword({V})
        }
        """,
    ),
    _t(
        "telematics/edge/src/bridge.rs",
        "h11_mqtt_pw",
        True,
        """
        use rumqttc::{AsyncClient, MqttOptions, QoS};
        use std::time::Duration;

        pub async fn connect() -> anyhow::Result<AsyncClient> {
            let mut opts = MqttOptions::new("edge-lej-01", "mqtt.corvane.com", 8883);
            opts.set_keep_alive(Duration::from_secs(30));
            opts.set_credentials("edge-gw", "{V}");
            let (client, mut eventloop) = AsyncClient::new(opts, 64);
            tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
            client.subscribe("trucks/+/cmd", QoS::AtLeastOnce).await?;
            Ok(client)
        }
        """,
    ),
    _t(
        "telematics/edge/src/bridge.rs",
        "h11_rust_ref",
        False,
        """
        use rumqttc::{AsyncClient, MqttOptions};

        pub fn options(cfg: &Config) -> anyhow::Result<MqttOptions> {
            let mut opts = MqttOptions::new(&cfg.client_id, &cfg.host, 8883);
            let password = {V};
            opts.set_credentials(&cfg.username, password);
            Ok(opts)
        }
        """,
    ),
    _t(
        "telematics/edge/Cargo.lock",
        "h11_sha256",
        False,
        """
        # This file is automatically @generated by Cargo.
        # It is not intended for manual editing.
        version = 3

        [[package]]
        name = "rumqttc"
        version = "0.24.0"
        source = "registry+https://github.com/rust-lang/crates.io-index"
        checksum = "{V}"

        [[package]]
        name = "tokio"
        version = "1.36.0"
        source = "registry+https://github.com/rust-lang/crates.io-index"
        checksum = "{V2}"
        """,
    ),
    _t(
        "telematics/samsara-sync/sync.py",
        "h11_samsara",
        True,
        """
        \"\"\"Mirror Samsara vehicle locations into the tracking DB every minute.\"\"\"
        import requests

        SAMSARA_TOKEN = "{V}"
        BASE = "https://api.eu.samsara.com"


        def locations():
            r = requests.get(
                f"{BASE}/fleet/vehicles/locations",
                headers={"Authorization": f"Bearer {SAMSARA_TOKEN}"},
                timeout=20,
            )
            r.raise_for_status()
            return r.json()["data"]
        """,
    ),
    _t(
        "telematics/samsara-sync/tests/test_sync.py",
        "h11_fake_token",
        False,
        """
        import responses

        from sync import locations


        @responses.activate
        def test_locations(monkeypatch):
            monkeypatch.setattr("sync.SAMSARA_TOKEN", "{V}")
            responses.get(
                "https://api.eu.samsara.com/fleet/vehicles/locations",
                json={"data": [{"id": "281474977075123", "name": "CVN-TR-0142"}]},
            )
            assert locations()[0]["name"] == "CVN-TR-0142"
        """,
    ),
    _t(
        "telematics/fleet/trucks.csv",
        "h11_vin",
        False,
        """
        fleet_no,vin,depot,gateway,in_service
        CVN-TR-0142,{V},LEJ,gw-lej-03,2021-04-12
        CVN-TR-0143,{V2},LEJ,gw-lej-03,2021-04-12
        CVN-TR-0310,{V3},ORD,gw-ord-07,2022-09-01
        """,
    ),
    _t(
        "telematics/firmware/ota/manifest.json",
        "h11_sha256",
        False,
        """
        {
          "model": "CVG-200",
          "version": "3.8.1",
          "url": "https://ota.corvane.com/cvg-200/3.8.1/firmware.bin",
          "sha256": "{V}",
          "signature_key_id": "ota-2024",
          "previous": { "version": "3.7.4", "sha256": "{V2}" }
        }
        """,
    ),
]

TEMPLATES += [
    # ================================================================ Terraform / AWS / GCP
    _t(
        "infra/terraform/envs/legacy-aws/provider.tf",
        "h11_aws_tf_pair",
        True,
        """
        terraform {
          required_providers {
            aws = { source = "hashicorp/aws", version = "~> 5.40" }
          }
        }

        # TODO: switch to the SSO profile, this is the old terraform-ci user
        provider "aws" {
          region     = "eu-central-1"
          {IV}
        }
        """,
    ),
    _t(
        "infra/terraform/modules/wms-rds/main.tf",
        "h11_tf_ref",
        False,
        """
        resource "random_password" "wms" {
          length  = 32
          special = false
        }

        resource "aws_db_instance" "wms_reporting" {
          identifier          = "wms-reporting"
          engine              = "sqlserver-se"
          instance_class      = "db.m6i.xlarge"
          username            = "wmsadmin"
          password            = {V}
          skip_final_snapshot = false
        }
        """,
    ),
    _t(
        "infra/terraform/modules/oracle-dr/main.tf",
        "h11_oracle_pw",
        True,
        """
        resource "aws_db_instance" "wms_oracle_dr" {
          identifier        = "wmsprd-dr"
          engine            = "oracle-se2"
          license_model     = "license-included"
          instance_class    = "db.m5.2xlarge"
          username          = "admin"
          password          = "{V}"
          allocated_storage = 500
          multi_az          = true
        }
        """,
    ),
    _t(
        "infra/terraform/envs/prod/terraform.tfvars",
        "h11_placeholder",
        False,
        """
        project_id   = "corvane-prod"
        region       = "europe-west3"
        db_tier      = "db-custom-4-16384"
        # real value comes from TF_VAR_db_password in the pipeline
        db_password  = "{V}"
        alert_emails = ["ops@corvane.com"]
        """,
    ),
    _t(
        "infra/terraform/envs/prod/.terraform.lock.hcl",
        "h11_tf_hash",
        False,
        """
        # This file is maintained automatically by "terraform init".
        # Manual edits may be lost in future updates.

        provider "registry.terraform.io/hashicorp/google" {
          version     = "5.21.0"
          constraints = "~> 5.0"
          hashes = [
            "{V}",
            "{V2}",
            "zh:0c3e2e3b2a6ebd1c5c4e7c0f0e8fd3a1b9e6b0c5d4f3a2b1c0d9e8f7a6b5c4d3",
          ]
        }
        """,
    ),
    _t(
        "infra/terraform/envs/prod/secrets.tf",
        "h11_tf_ref",
        False,
        """
        resource "google_secret_manager_secret_version" "tracking_db" {
          secret      = google_secret_manager_secret.tracking_db.id
          secret_data = {V}
        }

        resource "google_sql_user" "tracking" {
          name     = "tracking_svc"
          instance = google_sql_database_instance.tracking.name
          password = {V2}
        }
        """,
    ),
    _t(
        "infra/gcp/keys/wms-exporter-sa.json",
        "h11_gcp_sa_key",
        True,
        """
        {
          "type": "service_account",
          "project_id": "corvane-prod",
          "private_key_id": "3f9a1c7e0b5d2a8f4e6c1b9d7a3e5f0c2b8d4a6e",
          "private_key": "{V}",
          "client_email": "wms-exporter@corvane-prod.iam.gserviceaccount.com",
          "client_id": "104857362910475839201",
          "auth_uri": "https://accounts.google.com/o/oauth2/auth",
          "token_uri": "https://oauth2.googleapis.com/token",
          "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
          "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/wms-exporter%40corvane-prod.iam.gserviceaccount.com",
          "universe_domain": "googleapis.com"
        }
        """,
    ),
    _t(
        "infra/gcp/wif/github-credential-config.json",
        "h11_sa_email",
        False,
        """
        {
          "type": "external_account",
          "audience": "//iam.googleapis.com/projects/418273645501/locations/global/workloadIdentityPools/github/providers/corvane",
          "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
          "token_url": "https://sts.googleapis.com/v1/token",
          "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{V}:generateAccessToken",
          "credential_source": { "environment_id": "github", "format": { "type": "json", "subject_token_field_name": "value" } }
        }
        """,
    ),
    _t(
        "infra/gcp/oauth/iap-client.tf",
        "h11_google_client_id",
        False,
        """
        # IAP in front of the yard portal; client secret is in Secret Manager (iap-yard-portal)
        resource "google_iap_web_backend_service_iam_binding" "yard" {
          project             = "corvane-prod"
          web_backend_service = "yard-portal"
          role                = "roles/iap.httpsResourceAccessor"
          members             = ["group:yard-ops@corvane.com"]
        }

        locals {
          iap_client_id = "{V}"
        }
        """,
    ),
    _t(
        "infra/ci/aws/credentials",
        "h11_aws_ini_pair",
        True,
        """
        [default]
        region = eu-central-1

        [corvane-legacy-ci]
        {V}
        region = eu-central-1
        """,
    ),
    _t(
        "docs/infra/aws-cli-setup.md",
        "h11_aws_example_pair",
        False,
        """
        # AWS CLI setup (legacy account)

        We use IAM Identity Center; static keys are not issued any more. If a tool insists on a
        credentials file, it looks like this (values from the AWS docs):

        ```ini
        [default]
        {V}
        ```

        Then run `aws sts get-caller-identity` to check.
        """,
    ),
    _t(
        "infra/lambda/awb-notifier/env.json",
        "h11_kms_blob",
        False,
        """
        {
          "Variables": {
            "SLACK_WEBHOOK_ENC": "{V}",
            "PD_ROUTING_KEY_ENC": "{V2}",
            "STAGE": "prod"
          }
        }
        """,
    ),
    _t(
        "infra/ansible/group_vars/wms_hosts.yml",
        "h11_pw",
        True,
        """
        ansible_user: deploy
        ansible_become: true
        ansible_become_password: {V}
        wms_db_host: sqlwms01.corvane.internal
        wms_db_password: "{V2}"
        """,
    ),
    _t(
        "infra/ansible/group_vars/all/vault.yml",
        "h11_ansible_vault",
        False,
        """
        {V}
        """,
    ),
    _t(
        "infra/ansible/roles/tomcat_yard/defaults/main.yml",
        "h11_jinja_ref",
        False,
        """
        tomcat_version: 10.1.19
        tomcat_manager_user: yard-admin
        tomcat_manager_password: "{V}"
        yard_db_password: "{V2}"
        """,
    ),
    _t(
        "infra/secrets/prod.enc.yaml",
        "h11_sops",
        False,
        """
        wms:
            db_password: {V}
        fedex:
            client_secret: {V2}
        sops:
            gcp_kms:
                - resource_id: projects/corvane-prod/locations/global/keyRings/sops/cryptoKeys/infra
                  created_at: "2024-03-02T10:11:12Z"
                  enc: CiQA7rX3mK0nQ2u5k9mC1bq8hYt6sD1xU0aW2pE7vJ9fL4tN6EISSQCq
            lastmodified: "2024-03-02T10:11:12Z"
            version: 3.8.1
        """,
    ),
    # ================================================================ CI / Docker
    _t(
        ".github/workflows/deploy-tracking.yml",
        "h11_aws_yaml_pair",
        True,
        """
        name: deploy-tracking
        on:
          push:
            branches: [main]
        jobs:
          deploy:
            runs-on: ubuntu-latest
            env:
              AWS_REGION: eu-central-1
              {IV}
            steps:
              - uses: actions/checkout@v4
              - run: aws s3 sync ./dist s3://corvane-track-web --delete
        """,
    ),
    _t(
        ".github/workflows/deploy-tracking.yml",
        "h11_gha_ref",
        False,
        """
        name: deploy-tracking
        on:
          push:
            branches: [main]
        jobs:
          deploy:
            runs-on: ubuntu-latest
            permissions:
              id-token: write
            steps:
              - uses: actions/checkout@v4
              - uses: DataDog/synthetics-ci-github-action@v1
                with:
                  api_key: {V}
                  app_key: {V2}
        """,
    ),
    _t(
        ".github/workflows/vendor-sync.yml",
        "h11_github_fine",
        True,
        """
        name: vendor-sync
        on:
          schedule:
            - cron: "0 3 * * 1"
        jobs:
          sync:
            runs-on: ubuntu-latest
            steps:
              - name: clone private carrier SDK fork
                run: git clone https://x-access-token:{V}@github.com/corvane/ups-sdk-fork.git vendor/ups-sdk
        """,
    ),
    _t(
        ".github/workflows/ci.yml",
        "h11_git_sha",
        False,
        """
        name: ci
        on: [push, pull_request]
        jobs:
          test:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@{V} # v4.1.1
              - uses: actions/setup-go@{V2} # v5.0.0
                with:
                  go-version-file: tracking-api/go.mod
              - run: go test ./...
                working-directory: tracking-api
        """,
    ),
    _t(
        ".gitlab-ci.yml",
        "h11_gitlab",
        True,
        """
        stages: [build, push]

        build-scanner-backend:
          stage: build
          image: docker:24
          services: [docker:24-dind]
          script:
            - docker login -u scanner-ci -p {V} registry.gitlab.corvane.com
            - docker build -t registry.gitlab.corvane.com/wms/scanner-backend:$CI_COMMIT_SHORT_SHA .
            - docker push registry.gitlab.corvane.com/wms/scanner-backend:$CI_COMMIT_SHORT_SHA
        """,
    ),
    _t(
        "wms/scanner-backend/.gitlab-ci.yml",
        "h11_gitlab_ref",
        False,
        """
        build:
          image: docker:24
          script:
            - echo "{V}" | docker login -u "$CI_REGISTRY_USER" --password-stdin "$CI_REGISTRY"
            - docker build -t "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA" .
        """,
    ),
    _t(
        "ops/jenkins/Jenkinsfile.nightly",
        "h11_jenkins_token",
        True,
        """
        pipeline {
          agent { label 'linux' }
          triggers { cron('H 1 * * *') }
          stages {
            stage('trigger downstream') {
              steps {
                sh 'curl -fsS -X POST -u ci-bot:{V} https://jenkins.corvane.internal/job/wms-nightly-export/build'
              }
            }
          }
        }
        """,
    ),
    _t(
        "ops/jenkins/Jenkinsfile.release",
        "h11_cred_id",
        False,
        """
        pipeline {
          agent any
          stages {
            stage('notify') {
              steps {
                withCredentials([string(credentialsId: '{V}', variable: 'PD_TOKEN')]) {
                  sh './ops/pagerduty/change-event.sh "$PD_TOKEN" "tracking-api ${env.BUILD_NUMBER}"'
                }
              }
            }
          }
        }
        """,
    ),
    _t(
        "ops/jenkins/casc/credentials.xml",
        "h11_jenkins_enc",
        False,
        """
        <?xml version='1.1' encoding='UTF-8'?>
        <com.cloudbees.plugins.credentials.SystemCredentialsProvider plugin="credentials@1319.v7eb_51b_3a_c97b_">
          <domainCredentialsMap class="hudson.util.CopyOnWriteMap$Hash">
            <entry>
              <com.cloudbees.plugins.credentials.domains.Domain><specifications/></com.cloudbees.plugins.credentials.domains.Domain>
              <java.util.concurrent.CopyOnWriteArrayList>
                <com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
                  <id>sftp-dhl-edi</id>
                  <username>CORVANE01</username>
                  <password>{V}</password>
                </com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
                <org.jenkinsci.plugins.plaincredentials.impl.StringCredentialsImpl>
                  <id>pagerduty-api-token</id>
                  <secret>{V2}</secret>
                </org.jenkinsci.plugins.plaincredentials.impl.StringCredentialsImpl>
              </java.util.concurrent.CopyOnWriteArrayList>
            </entry>
          </domainCredentialsMap>
        </com.cloudbees.plugins.credentials.SystemCredentialsProvider>
        """,
    ),
    _t(
        "tracking-web/Dockerfile",
        "h11_npm",
        True,
        """
        FROM node:20-alpine AS build
        WORKDIR /app
        COPY package*.json ./
        RUN echo "//registry.npmjs.org/:_authToken={V}" > .npmrc && npm ci && rm .npmrc
        COPY . .
        RUN npm run build

        FROM nginx:1.25-alpine
        COPY --from=build /app/dist /usr/share/nginx/html
        """,
    ),
    _t(
        "tracking-api/Dockerfile",
        "h11_docker_digest",
        False,
        """
        FROM golang:1.22-bookworm@{V} AS build
        WORKDIR /src
        COPY . .
        RUN CGO_ENABLED=0 go build -o /out/tracking-api ./cmd/api

        FROM gcr.io/distroless/static-debian12@{V2}
        COPY --from=build /out/tracking-api /tracking-api
        USER nonroot
        ENTRYPOINT ["/tracking-api"]
        """,
    ),
    _t(
        "wms/docker-compose.yml",
        "h11_pw",
        True,
        """
        services:
          oracle:
            image: gvenzl/oracle-free:23-slim
            environment:
              ORACLE_PASSWORD: {V}
              APP_USER: wms_legacy
              APP_USER_PASSWORD: {V2}
            ports: ["1521:1521"]
          inventory:
            build: ./inventory-service
            environment:
              SPRING_PROFILES_ACTIVE: uat
              SPRING_DATASOURCE_URL: jdbc:sqlserver://qa-sql02.corvane.internal:1433;databaseName=WMS_QA
              SPRING_DATASOURCE_PASSWORD: {V3}
        """,
    ),
    _t(
        "wms/docker-compose.override.yml",
        "h11_compose_ref",
        False,
        """
        services:
          oracle:
            environment:
              ORACLE_PASSWORD: "{V}"
          inventory:
            environment:
              SPRING_DATASOURCE_PASSWORD: "{V2}"
        """,
    ),
    _t(
        "ops/build-agent/.docker/config.json",
        "h11_basic_b64",
        True,
        """
        {
          "auths": {
            "registry.gitlab.corvane.com": {
              "auth": "{V}"
            },
            "europe-docker.pkg.dev": {
              "auth": "{V2}"
            }
          }
        }
        """,
    ),
]

TEMPLATES += [
    # ================================================================ ops: PagerDuty / Datadog / Slack / Jira
    _t(
        "ops/pagerduty/escalate.py",
        "h11_pd_api",
        True,
        """
        #!/usr/bin/env python3
        \"\"\"Re-assign stale WMS incidents to the duty manager (run by cron on ops01).\"\"\"
        import requests

        PD_API_TOKEN = "{V}"
        HEADERS = {
            "Authorization": f"Token token={PD_API_TOKEN}",
            "Accept": "application/vnd.pagerduty+json;version=2",
            "From": "ops-automation@corvane.com",
        }

        r = requests.get("https://api.pagerduty.com/incidents", headers=HEADERS,
                         params={"statuses[]": "triggered", "service_ids[]": ["PWMS001"]})
        for inc in r.json()["incidents"]:
            print(inc["id"], inc["title"])
        """,
    ),
    _t(
        "ops/alerts/pd_trigger.sh",
        "h11_pd_routing",
        True,
        """
        #!/bin/bash
        # usage: pd_trigger.sh "summary" [severity]
        SEV=${2:-error}
        curl -s -X POST https://events.pagerduty.com/v2/enqueue \\
          -H 'Content-Type: application/json' \\
          -d "{\\"routing_key\\":\\"{V}\\",\\"event_action\\":\\"trigger\\",\\"payload\\":{\\"summary\\":\\"$1\\",\\"source\\":\\"$(hostname)\\",\\"severity\\":\\"$SEV\\"}}"
        """,
    ),
    _t(
        "ops/pagerduty/services.tf",
        "h11_pd_service_id",
        False,
        """
        data "pagerduty_escalation_policy" "wms" {
          name = "WMS Primary"
        }

        resource "pagerduty_service_dependency" "tracking_on_wms" {
          dependency {
            dependent_service {
              id   = "{V}"
              type = "service"
            }
            supporting_service {
              id   = "{V2}"
              type = "service"
            }
          }
        }
        """,
    ),
    _t(
        "ops/pagerduty/change-event.sh",
        "h11_uuid",
        False,
        """
        #!/bin/bash
        # $1 = routing key (from Jenkins credentials), $2 = summary
        curl -s https://events.pagerduty.com/v2/change/enqueue -H 'Content-Type: application/json' -d @- <<JSON
        {"routing_key": "$1", "dedup_key": "{V}", "payload": {"summary": "$2", "source": "jenkins"}}
        JSON
        """,
    ),
    _t(
        "ops/datadog/datadog.yaml",
        "h11_dd_api",
        True,
        """
        ## datadog agent on the Windows WMS app servers (copied by GPO)
        api_key: {V}
        site: datadoghq.eu
        hostname_fqdn: true
        logs_enabled: true
        process_config:
          process_collection:
            enabled: true
        """,
    ),
    _t(
        "ops/datadog/datadog.yaml.tmpl",
        "h11_dd_placeholder",
        False,
        """
        api_key: {V}
        site: datadoghq.eu
        secret_backend_command: C:\\ProgramData\\Datadog\\secret-helper.exe
        logs_enabled: true
        """,
    ),
    _t(
        "ops/datadog/monitors/sync_monitors.py",
        "h11_dd_app",
        True,
        """
        from datadog_api_client import ApiClient, Configuration
        from datadog_api_client.v1.api.monitors_api import MonitorsApi

        cfg = Configuration()
        cfg.server_variables["site"] = "datadoghq.eu"
        cfg.api_key["apiKeyAuth"] = __import__("os").environ["DD_API_KEY"]
        cfg.api_key["appKeyAuth"] = "{V}"

        with ApiClient(cfg) as client:
            for m in MonitorsApi(client).list_monitors(tags="team:wms"):
                print(m.id, m.name)
        """,
    ),
    _t(
        "ops/datadog/dashboards/README.md",
        "h11_dd_dash_id",
        False,
        """
        # Dashboards

        | Name | ID |
        |------|----|
        | WMS – dock throughput | `{V}` |
        | Tracking API latency  | `{V2}` |
        | Telematics ingest     | `{V3}` |

        Export with `dogshell dashboard show <id>`.
        """,
    ),
    _t(
        "ops/datadog/rum.ts",
        "h11_uuid",
        False,
        """
        import { datadogRum } from '@datadog/browser-rum';

        datadogRum.init({
          applicationId: '{V}',
          clientToken: import.meta.env.VITE_DD_CLIENT_TOKEN,
          site: 'datadoghq.eu',
          service: 'tracking-web',
          sessionSampleRate: 20,
        });
        """,
    ),
    _t(
        "ops/Send-DatadogEvent.ps1",
        "h11_dd_api",
        True,
        """
        param([string]$Title, [string]$Text)
        $headers = @{
            "DD-API-KEY"   = "{V}"
            "Content-Type" = "application/json"
        }
        $body = @{ title = $Title; text = $Text; tags = @("team:wms", "source:powershell") } | ConvertTo-Json
        Invoke-RestMethod -Method Post -Uri "https://api.datadoghq.eu/api/v1/events" -Headers $headers -Body $body
        """,
    ),
    _t(
        "ops/slack/notify/notify.go",
        "h11_slack_webhook",
        True,
        """
        package notify

        import (
        	"bytes"
        	"encoding/json"
        	"net/http"
        )

        const webhookURL = "{V}" // #ops-dock-alerts

        func Post(text string) error {
        	b, _ := json.Marshal(map[string]string{"text": text})
        	_, err := http.Post(webhookURL, "application/json", bytes.NewReader(b))
        	return err
        }
        """,
    ),
    _t(
        "ops/slack/notify/README.md",
        "h11_slack_webhook_example",
        False,
        """
        # notify

        Posts to a Slack incoming webhook. Configure it with `SLACK_WEBHOOK_URL`, e.g.

        ```
        export SLACK_WEBHOOK_URL={V}
        go run ./cmd/notify "dock 7 door sensor offline"
        ```
        """,
    ),
    _t(
        "ops/slack/dockbot/.env",
        "h11_slack_bot",
        True,
        """
        SLACK_BOT_TOKEN={V}
        SLACK_APP_CHANNEL=C05LQ2J9K7P
        WMS_API=https://wms-api.corvane.internal
        """,
    ),
    _t(
        "ops/slack/dockbot/tests/test_bot.py",
        "h11_fake_token",
        False,
        """
        from slack_bolt import App


        def make_app():
            return App(token="{V}", signing_secret="{V2}", token_verification_enabled=False)


        def test_dock_status_command():
            app = make_app()
            assert app is not None
        """,
    ),
    _t(
        "ops/jira/create_incident_ticket.py",
        "h11_jira_token",
        True,
        """
        import requests
        from requests.auth import HTTPBasicAuth

        JIRA = "https://corvane.atlassian.net"
        AUTH = HTTPBasicAuth("svc-ops-automation@corvane.com", "{V}")


        def create(summary: str, description: str) -> str:
            payload = {"fields": {"project": {"key": "OPS"}, "issuetype": {"name": "Incident"},
                                  "summary": summary, "description": description}}
            r = requests.post(f"{JIRA}/rest/api/2/issue", json=payload, auth=AUTH, timeout=30)
            r.raise_for_status()
            return r.json()["key"]
        """,
    ),
    _t(
        "ops/jira/export_sprint.sh",
        "h11_jira_token",
        True,
        """
        #!/bin/bash
        SPRINT=${1:?sprint id}
        curl -s -u "svc-ops-automation@corvane.com:{V}" \\
          "https://corvane.atlassian.net/rest/agile/1.0/sprint/${SPRINT}/issue?maxResults=200" \\
          | jq -r '.issues[] | [.key, .fields.summary, .fields.status.name] | @csv'
        """,
    ),
    _t(
        "ops/jira/config.yml",
        "h11_jira_ref",
        False,
        """
        jira:
          url: https://corvane.atlassian.net
          user: svc-ops-automation@corvane.com
          api_token: "{V}"
          project: OPS
        """,
    ),
    _t(
        "ops/jira/CHANGELOG.md",
        "h11_jira_key",
        False,
        """
        # Changelog

        ## 1.4.0
        - Rotated the automation token after {V} (token now read from `JIRA_API_TOKEN`).
        - Link incidents to the WMS epic {V2}.
        """,
    ),
    _t(
        "ops/vault/bootstrap.sh",
        "h11_vault_token",
        True,
        """
        #!/bin/bash
        # seeds the KV paths for the EDI poller (run once per environment)
        export VAULT_ADDR=https://vault.corvane.internal:8200
        export VAULT_TOKEN={V}
        vault kv put secret/edi/kn username=corvane_edi
        vault kv put secret/edi/dhl username=CORVANE01
        """,
    ),
    _t(
        "ops/release/KEYS.md",
        "h11_gpg_fpr",
        False,
        """
        # Release signing keys

        Firmware images and scanner APKs are signed by the release team. Verify with:

        ```
        gpg --recv-keys {V}
        gpg --verify firmware.bin.sig firmware.bin
        ```

        Previous key (expired 2023-12-31): `{V2}`
        """,
    ),
]

TEMPLATES += [
    # ================================================================ legacy apps: PHP, Rails, Django, C#
    _t(
        "billing/legacy/includes/db.php",
        "h11_pw",
        True,
        """
        <?php
        // invoice export for the air-cargo billing team (php 7.4 on billing01)
        $dsn = 'sqlsrv:Server=sqlbill01.corvane.internal;Database=BILLING';
        $pdo = new PDO($dsn, 'billing_web', '{V}', [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
        """,
    ),
    _t(
        "billing/legacy/includes/db.php",
        "h11_php_ref",
        False,
        """
        <?php
        $config = require __DIR__ . '/../config.php';
        $dsn = 'sqlsrv:Server=sqlbill01.corvane.internal;Database=BILLING';
        $pass = {V};
        $pdo = new PDO($dsn, 'billing_web', $pass);
        """,
    ),
    _t(
        "dispatch/config/database.yml",
        "h11_pw",
        True,
        """
        default: &default
          adapter: sqlserver
          host: sqldisp01.corvane.internal
          pool: 10

        production:
          <<: *default
          database: dispatch_prod
          username: dispatch_app
          password: {V}
        """,
    ),
    _t(
        "dispatch/config/database.yml",
        "h11_ruby_ref",
        False,
        """
        production:
          adapter: sqlserver
          host: sqldisp01.corvane.internal
          database: dispatch_prod
          username: dispatch_app
          password: {V}
        """,
    ),
    _t(
        "dispatch/config/credentials.yml.enc",
        "h11_rails_enc",
        False,
        """
        {V}
        """,
    ),
    _t(
        "dispatch/.bundle/config",
        "h11_url_pw",
        True,
        """
        ---
        BUNDLE_PATH: "vendor/bundle"
        BUNDLE_GEMS__CORVANE__INTERNAL: "ci-bundler:{V}"
        """,
    ),
    _t(
        "ratedesk/ratedesk/settings/production.py",
        "h11_django_key",
        True,
        """
        from .base import *  # noqa

        DEBUG = False
        ALLOWED_HOSTS = ["ratedesk.corvane.internal"]
        SECRET_KEY = '{V}'
        CSRF_TRUSTED_ORIGINS = ["https://ratedesk.corvane.internal"]
        """,
    ),
    _t(
        "ratedesk/ratedesk/settings/base.py",
        "h11_py_ref",
        False,
        """
        import os
        from pathlib import Path

        import environ

        env = environ.Env()
        BASE_DIR = Path(__file__).resolve().parent.parent.parent
        SECRET_KEY = {V}
        AUTH_PASSWORD_VALIDATORS = [
            {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
        ]
        """,
    ),
    _t(
        "ratedesk/config/carriers.yaml",
        "h11_ups_yaml_pair",
        True,
        """
        ups:
          base_url: https://onlinetools.ups.com
          account: 0Y7R52
          {IV}
        fedex:
          base_url: https://apis.fedex.com
        """,
    ),
    _t(
        "carrier-gateway/src/Corvane.Carriers/FedEx/FedExAuth.cs",
        "h11_fedex_secret",
        True,
        """
        using System.Net.Http;
        using System.Collections.Generic;

        namespace Corvane.Carriers.FedEx
        {
            public sealed class FedExAuth
            {
                private const string ClientId = "l7xx-corvane-prod";
                private const string ClientSecret = "{V}";

                public static FormUrlEncodedContent TokenRequest() => new(new Dictionary<string, string>
                {
                    ["grant_type"] = "client_credentials",
                    ["client_id"] = ClientId,
                    ["client_secret"] = ClientSecret,
                });
            }
        }
        """,
    ),
    _t(
        "carrier-gateway/src/Corvane.Carriers/FedEx/FedExAuth.cs",
        "h11_cs_ref",
        False,
        """
        using Microsoft.Extensions.Configuration;

        namespace Corvane.Carriers.FedEx
        {
            public sealed class FedExAuth(IConfiguration configuration)
            {
                private string ClientSecret => {V};
            }
        }
        """,
    ),
    _t(
        "etl/airflow/connections.yaml",
        "h11_url_pw",
        True,
        """
        # imported with: airflow connections import connections.yaml
        oracle_wmsprd:
          conn_type: oracle
          host: ora-wms01.corvane.internal
          login: etl_batch
          password: {V}
          port: 1521
          extra: '{"service_name": "WMSPRD"}'
        sqlserver_tracking:
          conn_type: mssql
          host: sql-trk01.corvane.internal
          login: etl_batch
          password: {V2}
        """,
    ),
    _t(
        "etl/airflow/README.md",
        "h11_example_dsn",
        False,
        """
        # ETL (Airflow)

        Connections are read from GCP Secret Manager (`airflow-connections-*`). For a local run
        you can export one as a URI, for example:

        ```
        export AIRFLOW_CONN_ORACLE_WMSPRD='{V}'
        ```
        """,
    ),
    # ================================================================ docs, runbooks, chat, notebooks
    _t(
        "docs/runbooks/wms-db-failover.md",
        "h11_pw",
        True,
        """
        # Runbook: WMS SQL Server failover (sqlwms01 -> sqlwms02)

        1. Announce in #ops-wms and page the duty manager.
        2. RDP to `sqlwms02` as `CORVANE\\svc_sqlops` (password `{V}`).
        3. In SSMS: Always On High Availability > Availability Groups > `AG_WMS` > Failover.
        4. Check the listener `wms-ag.corvane.internal` answers:
           `sqlcmd -S wms-ag.corvane.internal -U sa -P '{V2}' -Q "select @@servername"`
        5. Restart the inventory-service pods.
        """,
    ),
    _t(
        "docs/runbooks/tracking-api-keys.md",
        "h11_redacted",
        False,
        """
        # Runbook: rotating partner API keys

        1. Create the new key in the partner portal admin (`/admin/partners/<id>/keys`).
        2. Send it to the partner through the secure portal only. Example confirmation mail:

           > Your new key is `{V}` (shown once in the portal).

        3. Revoke the old key after 7 days. Old key ending: `{V2}`
        """,
    ),
    _t(
        "docs/vendors/contacts.md",
        "h11_weak_pw",
        True,
        """
        # Vendor portals

        | Vendor | Portal | Login | Password |
        |--------|--------|-------|----------|
        | Samsara | cloud.samsara.com | fleet-it@corvane.com | {V} |
        | HERE    | platform.here.com | logistics-it@corvane.com | {V2} |
        | Zebra   | zebra.com/support | scanners@corvane.com | {V3} |

        Ask Priya before adding people.
        """,
    ),
    _t(
        "docs/security/password-policy.md",
        "h11_pw_policy",
        False,
        """
        # Password policy (Corvane IT-SEC-04)

        - Service account passwords: {V}, generated, stored in Keeper.
        - Operator PINs on handhelds: 6 digits, {V2}.
        - Never put passwords in tickets, Slack, or Git.
        """,
    ),
    _t(
        "docs/portal/login.html",
        "h11_ui_text",
        False,
        """
        <!doctype html>
        <html lang="en">
        <body>
          <form method="post" action="/login" class="cv-login">
            <label for="badge">Badge</label>
            <input id="badge" name="badge" autocomplete="username">
            <label for="pw">Password</label>
            <input id="pw" name="password" type="password" placeholder="{V}" autocomplete="current-password">
            <p class="cv-hint">{V2}</p>
            <button type="submit">Sign in</button>
          </form>
        </body>
        </html>
        """,
    ),
    _t(
        "scanner-android/app/src/main/assets/locales/messages.json",
        "h11_ui_text",
        False,
        """
        {
          "login.password.placeholder": "{V}",
          "login.password.invalid": "{V2}",
          "login.pin.reset": "{V3}"
        }
        """,
    ),
    _t(
        "docs/dev/local-setup.md",
        "h11_weak_pw",
        True,
        """
        # Local setup

        The shared dev environment (`wms-dev.corvane.internal`) has a pre-seeded admin:

        - URL: https://wms-dev.corvane.internal/admin
        - user: `admin`
        - password: `{V}`

        Please don't change it, everyone uses it.
        """,
    ),
    _t(
        "docs/dev/api-examples.md",
        "h11_doc_pw",
        False,
        """
        # Calling the label service (examples)

        All examples point at the documentation mock server:

        ```
        curl -u labeluser:{V} https://labels.example.com/v1/print -d @label.zpl
        ```

        Replace the host and credentials with your own from Keeper.
        """,
    ),
    _t(
        "chat-exports/slack/ops-oncall/2024-03-12.json",
        "h11_pw",
        True,
        """
        [
          {"type": "message", "user": "U04K2M7QX", "ts": "1710236541.118209", "text": "DHL sftp is rejecting us again, did they rotate?"},
          {"type": "message", "user": "U03H8LRTZ", "ts": "1710236612.221400", "text": "yes, new one from their mail: {V}  (user CORVANE01)"},
          {"type": "message", "user": "U04K2M7QX", "ts": "1710236700.004100", "text": "thx, works"}
        ]
        """,
    ),
    _t(
        "chat-exports/slack/ops-oncall/2024-04-02.json",
        "h11_pd_api",
        True,
        """
        [
          {"type": "message", "user": "U02B1XKQ9", "ts": "1712051003.000200", "text": "who has a PD api key for the escalation script? mine expired"},
          {"type": "message", "user": "U03H8LRTZ", "ts": "1712051087.000300", "text": "use the ops-automation one: {V}"}
        ]
        """,
    ),
    _t(
        "chat-exports/slack/ops-oncall/2024-04-09.json",
        "h11_vault_ref",
        False,
        """
        [
          {"type": "message", "user": "U04K2M7QX", "ts": "1712653201.000100", "text": "where is the KN sftp password now?"},
          {"type": "message", "user": "U03H8LRTZ", "ts": "1712653260.000200", "text": "moved it, it's at {V}"}
        ]
        """,
    ),
    _t(
        "chat-exports/slack/dock-lej/2024-05-17.txt",
        "h11_tracking",
        False,
        """
        [08:12] m.kowalski: pallet for 1Z label missing, tracking {V}
        [08:14] s.brandt: found it at door 7, rescanned
        [08:30] m.kowalski: second one {V2} is on hold, customs
        """,
    ),
    _t(
        "analytics/notebooks/dwell_time.ipynb",
        "h11_oracle_pw",
        True,
        r"""
        {
         "cells": [
          {
           "cell_type": "code",
           "execution_count": 3,
           "metadata": {},
           "outputs": [],
           "source": [
            "import oracledb\n",
            "import pandas as pd\n",
            "conn = oracledb.connect(user=\"ANALYTICS\", password=\"{V}\", dsn=\"ora-wms01.corvane.internal:1521/WMSPRD\")\n",
            "df = pd.read_sql(\"select * from yard_moves where updated_at > sysdate - 30\", conn)"
           ]
          }
         ],
         "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
    ),
    _t(
        "analytics/notebooks/late_flights.ipynb",
        "h11_png_b64",
        False,
        r"""
        {
         "cells": [
          {
           "cell_type": "code",
           "execution_count": 7,
           "metadata": {},
           "outputs": [
            {
             "data": {"image/png": "{V}", "text/plain": ["<Figure size 640x480 with 1 Axes>"]},
             "metadata": {},
             "output_type": "display_data"
            }
           ],
           "source": ["late.plot(kind=\"bar\", x=\"station\", y=\"late_pct\")"]
          }
         ],
         "metadata": {},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
    ),
    _t(
        "analytics/notebooks/carrier_costs.ipynb",
        "h11_getpass_ref",
        False,
        r"""
        {
         "cells": [
          {
           "cell_type": "code",
           "execution_count": 1,
           "metadata": {},
           "outputs": [],
           "source": [
            "import getpass, oracledb\n",
            "pw = {V}\n",
            "conn = oracledb.connect(user=\"ANALYTICS\", password=pw, dsn=\"ora-wms01.corvane.internal:1521/WMSPRD\")"
           ]
          }
         ],
         "metadata": {},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
    ),
    _t(
        "docs/postmortems/2024-02-sftp-outage.md",
        "h11_redacted",
        False,
        """
        # Postmortem: KN SFTP outage (2024-02-19)

        **Impact:** 3h of delayed ASNs for the LEJ cross-dock.

        **Root cause:** the partner rotated the SFTP password; our poller still used the old
        value (`{V}`), and the account was locked after 5 attempts.

        **Actions:** password now read from Vault; alert on 3 consecutive auth failures.
        """,
    ),
]

TEMPLATES += [
    # ================================================================ more look-alikes
    _t(
        "tracking-web/public/verify.html",
        "h11_site_verification",
        False,
        """
        <!doctype html>
        <html>
        <head>
          <meta name="google-site-verification" content="{V}">
          <meta name="facebook-domain-verification" content="{V2}">
          <title>Corvane Freight &amp; Air</title>
        </head>
        <body></body>
        </html>
        """,
    ),
    _t(
        "edi/samples/mdn_from_kn.txt",
        "h11_mic",
        False,
        """
        Content-Type: message/disposition-notification
        Content-Transfer-Encoding: 7bit

        Reporting-UA: KN AS2 Gateway
        Original-Recipient: rfc822; KNUSA01
        Final-Recipient: rfc822; KNUSA01
        Original-Message-ID: <OPENAS2-11032024093012+0100-4711@CORVANEFRT_KNUSA01>
        Received-Content-MIC: {V}
        Disposition: automatic-action/MDN-sent-automatically; processed
        """,
    ),
    _t(
        "infra/lambda/awb-notifier/tests/conftest.py",
        "h11_test_fake",
        False,
        """
        import os

        import pytest
        from moto import mock_aws


        @pytest.fixture(autouse=True)
        def aws(monkeypatch):
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "{V}")
            monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.test/services/{V2}")
            with mock_aws():
                yield
        """,
    ),
    _t(
        "scanner-android/gradle/verification-metadata.xml",
        "h11_sha256",
        False,
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <verification-metadata xmlns="https://schema.gradle.org/dependency-verification">
          <configuration>
            <verify-metadata>true</verify-metadata>
          </configuration>
          <components>
            <component group="com.squareup.okhttp3" name="okhttp" version="4.12.0">
              <artifact name="okhttp-4.12.0.jar">
                <sha256 value="{V}" origin="Generated by Gradle"/>
              </artifact>
            </component>
            <component group="com.zebra.emdk" name="emdk" version="11.0.129">
              <artifact name="emdk-11.0.129.aar">
                <sha256 value="{V2}" origin="Generated by Gradle"/>
              </artifact>
            </component>
          </components>
        </verification-metadata>
        """,
    ),
]

TEMPLATES += [
    _t(
        "infra/lambda/awb-notifier/deploy.sh",
        "h11_aws_env_pair",
        True,
        """
        #!/bin/bash
        # deploys the AWB notifier with the legacy deployer user (account 4471-2290-1183)
        set -e
        {V}
        export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
        export AWS_DEFAULT_REGION=eu-central-1
        sam build && sam deploy --stack-name awb-notifier --no-confirm-changeset
        """,
    ),
]
