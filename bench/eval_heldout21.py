"""Blind part ``heldout21``: a municipal utilities company, Brennock City Utilities (BCU: water
supply and treatment, electricity distribution, district heating), with its vendors and
contractors. Files are SCADA/OT code and config (OSIsoft-style PI historian connectors, Ignition
gateway exports, OPC UA and Modbus gateways, DNP3 outstations, Mosquitto bridges, Telegraf and
InfluxDB, RTU cellular routers, SNMP, RADIUS and IPsec on the OT network, PLC backup scripts),
smart-meter head-end systems (DLMS/COSEM and wireless M-Bus meter keys, head-end SOAP clients and
their logs, MDM ingest, Kafka Connect), customer billing and payment portals (SAP IS-U RFC
bridges, Stripe and PayPal, legacy PHP, ASP.NET web.config, Go and TypeScript services, direct
debit SFTP and PGP), field-service mobile apps (Android Gradle, iOS xcconfig, fastlane, Kotlin and
Rust sync services), GIS (ArcGIS scripts and notebooks, GeoServer, QGIS, pg_service), the outage
map (Node, serverless, social posting), call-centre integrations (Genesys Cloud, Asterisk, Salesforce,
Dynamics, Teams), the data platform (Airflow, dbt/Snowflake, Databricks, Spark on Azure, Kafka,
R and Jupyter), infrastructure and CI (Terraform, Ansible, Kubernetes, Helm, Compose, Dockerfiles,
GitHub Actions, GitLab CI, Jenkins, Azure Pipelines, package manager configs), and the prose of
runbooks, contractor handovers, tickets, chat exports, logs and HTML docs. Written blind (without
seeing the scanner, its rules, or other parts' templates).

Look-alikes sit in the same kinds of files under the same key names: references to environment
variables and secret stores in each language and tool, placeholders and redactions, password
hashes (bcrypt, argon2, sha512-crypt, SQL Server, SCRAM, GeoServer digests, apr1), values
encrypted at rest (SOPS, Ansible Vault, Jasypt, sealed secrets, Jenkins, FortiGate ``ENC``,
DPAPI-protected config sections, KMS blobs, Maven), public material (certificates, public and SSH
keys, PGP public blocks, host fingerprints, Stripe and Mapbox publishable keys, OAuth client ids),
identifiers shaped like secrets (meter serials and MPANs, IMEIs and ICCIDs, PI Web API WebIds,
ArcGIS item ids, OPC UA node ids, Twilio account SIDs, WS-Security digests and nonces, digests),
UI text about passwords, documented example credentials (the DLMS Blue Book example keys, AWS
``EXAMPLE`` keys, Slack's sample webhook), and test values that say they are fake.
"""

from __future__ import annotations

import base64
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
CRYPT64 = "./" + ALNUM
PW_SYMBOLS = "!#%*-_=+.@$"


class Heldout21Values(evalset.Values):
    """Value generators of the heldout21 part; every name starts with ``h21_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "reservoir",
            "hydrant",
            "turbine",
            "feeder",
            "aquifer",
            "substation",
            "penstock",
            "borehole",
            "manifold",
            "isolator",
            "culvert",
            "pylon",
            "valve",
            "sluice",
        ]
        self.users = [
            "scada_ro",
            "hes_app",
            "billing",
            "pi_reader",
            "gis_editor",
            "fieldsvc",
            "outage",
            "ivr",
            "etl_loader",
            "mdm",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def h21_util_b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        text = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
        return text if pad else text.rstrip("=")

    def h21_util_crc_token(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def h21_util_armor(self, label: str, nbytes: int, width: int = 64) -> str:
        body = base64.b64encode(self.rng.randbytes(nbytes)).decode()
        rows = [body[i : i + width] for i in range(0, len(body), width)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def h21_util_aws_id(self) -> str:
        return self.pick(["AKIA", "AKIA", "ASIA"])[:4] + self.s(
            16, string.ascii_uppercase + "234567"
        )

    def h21_util_aws_secret(self) -> str:
        return self.s(1, ALNUM) + self.s(39, ALNUM + "/+")

    # ------------------------------------------------------------------ positives: passwords
    def h21_pw(self) -> str:
        shape = self.rng.randrange(6)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*.$"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(12, 20), ALNUM + PW_SYMBOLS
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}-{other.capitalize()}-{self.s(3, DIGITS)}"
        if shape == 3:
            return "Bcu" + self.s(11, ALNUM) + self.pick(list("!#%$"))
        if shape == 4:
            return self.s(18, ALNUM)
        leet = word.replace("a", "@").replace("o", "0").replace("e", "3").replace("i", "1")
        return leet[0].upper() + leet[1:] + "_" + self.s(4, DIGITS)

    def h21_weak_pw(self) -> str:
        shape = self.rng.randrange(5)
        if shape == 0:
            return self.pick(
                [
                    "Welcome2024!",
                    "Brennock1",
                    "Utilities123",
                    "Scada2023!",
                    "Passw0rd!",
                    "Water2022",
                    "heating123",
                    "Grid#2021",
                ]
            )
        if shape == 1:
            return "Brennock" + str(self.rng.randrange(2016, 2026)) + self.pick(["", "!", "#", "$"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2024", "!", "01"])
        if shape == 3:
            return (
                self.pick(["Winter", "Summer", "Autumn", "Spring"])
                + str(self.rng.randrange(2019, 2026))
                + self.pick(["", "!"])
            )
        return self.pick(["Rtu", "Hmi", "Plc", "Ops"]) + "-admin-" + self.s(2, DIGITS)

    def h21_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(4, DIGITS)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(13, 22), ALNUM + "-_.~")

    def h21_oracle_pw(self) -> str:
        body = self.s(1, string.ascii_uppercase) + self.s(self.rng.randrange(9, 14), ALNUM)
        cut = self.rng.randrange(3, len(body))
        return body[:cut] + self.pick(["#", "_", "$"]) + body[cut:] + self.s(2, DIGITS)

    def h21_mqtt_pw(self) -> str:
        if self.rng.randrange(2):
            return self.s(24, ALNUM)
        return "-".join(self.pick(self.words) for _ in range(3)) + "-" + self.s(2, DIGITS)

    def h21_psk(self) -> str:
        if self.rng.randrange(2):
            return self.s(self.rng.randrange(24, 40), ALNUM + "!#%+=.")
        return "0x" + self.s(64, HEX)

    def h21_snmp_secret(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return "bcu" + self.pick(["RO", "rw", "ot"]) + self.s(10, ALNUM)
        if shape == 1:
            return self.pick(self.words) + "!" + self.s(6, ALNUM) + self.s(2, DIGITS)
        return self.s(16, ALNUM + "#$")

    def h21_b64_pw(self) -> str:
        return base64.b64encode(self.h21_pw().encode()).decode()

    def h21_basic_b64(self) -> str:
        user = self.pick([*self.users, "svc-hes", "bcu-deploy", "pi-webapi"])
        return base64.b64encode(f"{user}:{self.h21_pw()}".encode()).decode()

    def h21_meter_lls(self) -> str:
        # DLMS low-level-security passwords: 8-16 printable characters
        return self.s(self.rng.randrange(8, 13), ALNUM)

    # ------------------------------------------------------------------ positives: keys and tokens
    def h21_hex32_key(self) -> str:
        return self.s(32, self.pick([HEX, HEXU]))

    def h21_jwt_secret(self) -> str:
        if self.rng.randrange(2):
            return self.s(self.rng.randrange(40, 65), ALNUM + "-_")
        return self.h21_util_b64(48)

    def h21_b64_32(self) -> str:
        return self.h21_util_b64(32)

    def h21_fernet(self) -> str:
        return self.h21_util_b64(32, urlsafe=True)

    def h21_influx_token(self) -> str:
        return self.h21_util_b64(64, urlsafe=True)

    def h21_api_key(self) -> str:
        return "bcu_hes_" + self.s(40, ALNUM)

    def h21_stripe_sk(self) -> str:
        return self.pick(["sk_live_", "rk_live_"]) + self.s(self.rng.choice([24, 99]), ALNUM)

    def h21_stripe_whsec(self) -> str:
        return "whsec_" + self.s(32, ALNUM)

    def h21_paypal_secret(self) -> str:
        return "E" + self.s(79, URLSAFE)

    def h21_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def h21_twilio_token(self) -> str:
        return self.s(32, HEX)

    def h21_google_key(self) -> str:
        return "AIzaSy" + self.s(33, URLSAFE)

    def h21_arcgis_key(self) -> str:
        return "AAPK" + self.s(32, HEX) + self.s(self.rng.randrange(60, 90), URLSAFE)

    def h21_mapbox_sk(self) -> str:
        claims = {
            "u": self.pick(["brennock-gis", "bcu-field", "bcu-outage"]),
            "a": "cl" + self.s(23, LOWNUM),
        }
        mid = (
            base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode())
            .decode()
            .rstrip("=")
        )
        return f"sk.{mid}.{self.s(22, URLSAFE)}"

    def h21_github(self) -> str:
        return self.h21_util_crc_token(self.pick(["ghp", "ghp", "gho"]))

    def h21_github_fine(self) -> str:
        return f"github_pat_11{self.s(20, UPNUM)}_{self.s(59, ALNUM)}"

    def h21_gitlab(self) -> str:
        return "glpat-" + self.s(20, URLSAFE)

    def h21_npm(self) -> str:
        return self.h21_util_crc_token("npm")

    def h21_docker_pat(self) -> str:
        return "dckr_pat_" + self.s(27, URLSAFE)

    def h21_slack_bot(self) -> str:
        return f"xoxb-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-{self.s(24, ALNUM)}"

    def h21_slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T0{self.s(8, UPNUM)}"
            f"/B0{self.s(9, UPNUM)}/{self.s(24, ALNUM)}"
        )

    def h21_teams_webhook(self) -> str:
        ids = [str(uuid.UUID(int=self.rng.getrandbits(128), version=4)) for _ in range(3)]
        return (
            f"https://brennockutilities.webhook.office.com/webhookb2/{ids[0]}@{ids[1]}"
            f"/IncomingWebhook/{self.s(32, HEX)}/{ids[2]}/V2{self.s(43, URLSAFE)}"
        )

    def h21_aws_ini(self) -> str:
        return (
            f"aws_access_key_id = {self.h21_util_aws_id()}\n"
            f"aws_secret_access_key = {self.h21_util_aws_secret()}"
        )

    def h21_aws_tf(self) -> str:
        return (
            f'access_key = "{self.h21_util_aws_id()}"\nsecret_key = "{self.h21_util_aws_secret()}"'
        )

    def h21_aws_nb(self) -> str:
        return (
            f"aws_access_key_id='{self.h21_util_aws_id()}', "
            f"aws_secret_access_key='{self.h21_util_aws_secret()}'"
        )

    def h21_azure_secret(self) -> str:
        return self.s(3, ALNUM + "_~.") + self.s(1, DIGITS) + "Q~" + self.s(34, ALNUM + "_~.-")

    def h21_azure_storage_key(self) -> str:
        return self.h21_util_b64(64)

    def h21_databricks(self) -> str:
        return "dapi" + self.s(32, HEX) + self.pick(["", "", "-2", "-3"])

    def h21_datadog(self) -> str:
        return self.s(32, HEX)

    def h21_newrelic(self) -> str:
        return self.s(36, HEX) + "NRAL"

    def h21_okta(self) -> str:
        return "00" + self.s(40, URLSAFE)

    def h21_hvs(self) -> str:
        return "hvs." + self.s(24, ALNUM)

    def h21_hf(self) -> str:
        return "hf_" + self.s(34, string.ascii_letters)

    def h21_genesys_secret(self) -> str:
        return self.s(43, URLSAFE)

    def h21_confluent_secret(self) -> str:
        return self.s(1, ALNUM) + self.s(63, ALNUM + "+/")

    def h21_sfdx_url(self) -> str:
        token = "5Aep861" + self.s(80, ALNUM + "._")
        return f"force://PlatformCLI::{token}@brennock-utilities.my.salesforce.com"

    def h21_x_bearer(self) -> str:
        return (
            "AAAAAAAAAAAAAAAAAAAAA"
            + self.s(8, ALNUM)
            + "AAAAAA"
            + self.s(28, ALNUM)
            + "%3D"
            + self.s(50, ALNUM)
        )

    def h21_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            raw = json.dumps(obj, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")

        iat = 1706000000 + self.rng.randrange(3 * 10**7)
        header = part({"alg": self.pick(["HS256", "RS256"]), "typ": "JWT"})
        payload = part(
            {
                "iss": "https://login.brennockutilities.net",
                "sub": self.pick(["svc-outage-map", "hes-adapter", "fieldsvc-sync", "ivr"]),
                "scope": self.pick(["meters:read", "outages:write", "accounts:read billing:write"]),
                "iat": iat,
                "exp": iat + self.pick([3600, 86400, 31536000]),
            }
        )
        return f"{header}.{payload}.{self.h21_util_b64(32, urlsafe=True, pad=False)}"

    def h21_rsa_pem(self) -> str:
        return self.h21_util_armor("RSA PRIVATE KEY", 48 * self.rng.randrange(10, 16))

    def h21_pkcs8(self) -> str:
        return self.h21_util_armor("PRIVATE KEY", 48 * self.rng.randrange(3, 14))

    def h21_openssh(self) -> str:
        raw = b"openssh-key-v1\x00" + self.rng.randbytes(360)
        body = base64.b64encode(raw).decode()
        rows = [body[i : i + 70] for i in range(0, len(body), 70)]
        return (
            "-----BEGIN OPENSSH PRIVATE KEY-----\n"
            + "\n".join(rows)
            + "\n-----END OPENSSH PRIVATE KEY-----"
        )

    def h21_pgp_private(self) -> str:
        body = base64.b64encode(self.rng.randbytes(48 * 14)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        check = base64.b64encode(self.rng.randbytes(3)).decode()
        return (
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n"
            + "\n".join(rows)
            + f"\n={check}\n-----END PGP PRIVATE KEY BLOCK-----"
        )

    def h21_gcp_private_key(self) -> str:
        return self.h21_pkcs8().replace("\n", "\\n") + "\\n"

    def h21_py_ref(self) -> str:
        return self.pick(
            [
                'os.environ["PI_WEBAPI_PASSWORD"]',
                'os.getenv("HES_API_KEY")',
                'Variable.get("snowflake_password")',
                'keyring.get_password("bcu-arcgis", "svc_gis_publisher")',
                'client.secrets.kv.v2.read_secret_version(path="ot/historian")["data"]["data"]["password"]',
                "settings.STRIPE_SECRET_KEY",
            ]
        )

    def h21_js_ref(self) -> str:
        return self.pick(
            [
                "process.env.STRIPE_SECRET_KEY",
                'process.env["STRIPE_SECRET_KEY"] ?? ""',
                'await getSecret("billing-portal/stripe-secret-key")',
                'config.get<string>("stripe.secretKey")',
            ]
        )

    def h21_go_ref(self) -> str:
        return self.pick(
            [
                'os.Getenv("TWILIO_AUTH_TOKEN")',
                'viper.GetString("twilio.auth_token")',
                'mustEnv("TWILIO_AUTH_TOKEN")',
                'secrets.MustGet("ot/alarm-forwarder/twilio-token")',
            ]
        )

    def h21_cs_ref(self) -> str:
        return self.pick(
            [
                'Environment.GetEnvironmentVariable("HES_PASSWORD")',
                'configuration["HeadEnd:Password"]',
                "_options.Value.ClientSecret",
                'await secretClient.GetSecretAsync("dynamics-client-secret")',
            ]
        )

    def h21_spring_ref(self) -> str:
        return self.pick(
            [
                "${HES_DB_PASSWORD}",
                "${vault.hes.db.password}",
                "${HES_API_KEY:}",
                "ENC(${HES_DB_PASSWORD_ENC})",
            ]
        )

    def h21_sh_ref(self) -> str:
        return self.pick(
            [
                '"$SFTP_PASSWORD"',
                '"$(vault kv get -field=password secret/billing/bacs-sftp)"',
                '"${BACS_SFTP_PASS:?not set}"',
                '"$(cat /run/secrets/sftp_password)"',
                '"$(az keyvault secret show --vault-name kv-bcu-prod -n bacs-sftp --query value -o tsv)"',
            ]
        )

    def h21_ps_ref(self) -> str:
        return self.pick(
            [
                "(Get-Secret -Name PlcBackupPassword -AsPlainText)",
                "$env:PLC_BACKUP_PASSWORD",
                "(Get-StoredCredential -Target 'PLC-BACKUP').GetNetworkCredential().Password",
                "(Read-Host -Prompt 'PLC password' -AsSecureString)",
            ]
        )

    def h21_ci_ref(self) -> str:
        return self.pick(
            [
                "${{ secrets.DOCKERHUB_TOKEN }}",
                "$CI_REGISTRY_PASSWORD",
                "$(acrPassword)",
                "${{ secrets.NPM_TOKEN }}",
                "$DEPLOY_TOKEN",
            ]
        )

    def h21_tf_ref(self) -> str:
        return self.pick(
            [
                "var.snowflake_password",
                "random_password.hes_db.result",
                "data.azurerm_key_vault_secret.sql_admin.value",
                "data.aws_secretsmanager_secret_version.mdm.secret_string",
                "sensitive(var.genesys_client_secret)",
            ]
        )

    def h21_helm_ref(self) -> str:
        return self.pick(
            [
                "{{ .Values.hes.db.password | quote }}",
                '{{ required "hes.apiKey is required" .Values.hes.apiKey }}',
                '""',
                "{{ .Values.global.existingSecret }}",
            ]
        )

    def h21_php_ref(self) -> str:
        return self.pick(
            [
                "getenv('BILLING_DB_PASS')",
                "$_ENV['BILLING_DB_PASS']",
                "env('DB_PASSWORD')",
                "BILLING_DB_PASS",
            ]
        )

    def h21_kt_ref(self) -> str:
        return self.pick(
            [
                'System.getenv("KEYSTORE_PASSWORD")',
                'project.findProperty("bcuStorePassword") as String?',
                'providers.gradleProperty("BCU_KEY_PASSWORD").get()',
                "BuildConfig.MAPS_API_KEY",
            ]
        )

    def h21_secret_store_ref(self) -> str:
        return self.pick(
            [
                "vault:secret/data/ot/pi#password",
                "op://OT-Vault/PI Web API/password",
                "@Microsoft.KeyVault(SecretUri=https://kv-bcu-prod.vault.azure.net/secrets/hes-db/)",
                "arn:aws:secretsmanager:eu-west-2:418273650912:secret:prod/mdm/db-Xk3p9Q",
                "secretref:billing-portal/stripe-secret-key",
                "cyberark://Safe=OT-Historian;Object=pi-reader",
            ]
        )

    # ------------------------------------------------------------------ negatives: placeholders
    def h21_placeholder(self) -> str:
        return self.pick(
            [
                "changeme",
                "<password>",
                "CHANGE_ME",
                "your-password-here",
                "********",
                "<REDACTED>",
                "__HES_PASSWORD__",
                "xxxxxxxxxxxxxxxx",
                "TBD",
                "<ask OT security>",
                "#{HesPassword}#",
                "@@PI_PASSWORD@@",
            ]
        )

    def h21_key_placeholder(self) -> str:
        return self.pick(
            [
                "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx",
                "YOUR_API_KEY",
                "<api-key>",
                "pk.your-mapbox-token",
                "00000000000000000000000000000000",
                "REPLACE_WITH_KEY",
                "AIzaSy...",
                "xoxb-your-bot-token",
                "<token>",
            ]
        )

    def h21_masked(self) -> str:
        return self.pick(
            [
                "****",
                "[FILTERED]",
                "***redacted***",
                "<hidden>",
                "sk_live_****************7Qx2",
                "Basic ****",
                "[MASKED]",
                "xxxx...xxxx",
            ]
        )

    def h21_fake(self) -> str:
        return self.pick(
            [
                "fake-password-for-tests",
                "not-a-real-token",
                "test_secret_do_not_use",
                "dummy",
                "FAKE_STRIPE_KEY_FOR_UNIT_TESTS",
                "unit-test-only-key",
                "example-token-000",
                "s3cr3t-but-only-in-tests",
            ]
        )

    def h21_doc_example(self) -> str:
        return self.pick(
            [
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
                "postgres://user:password@localhost:5432/mydb",
                "Basic dXNlcm5hbWU6cGFzc3dvcmQ=",
            ]
        )

    def h21_doc_authz(self) -> str:
        return self.pick(
            [
                "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
                "Basic dXNlcm5hbWU6cGFzc3dvcmQ=",
                "Bearer <access_token>",
                "Basic <base64(client_id:client_secret)>",
                "Bearer YOUR_TOKEN_HERE",
            ]
        )

    def h21_dlms_example(self) -> str:
        # the example keys printed in the DLMS UA Green/Blue Book and Gurux samples
        return self.pick(
            [
                "000102030405060708090A0B0C0D0E0F",
                "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF",
                "4D4D4D0000BC614E",
                "00000000000000000000000000000000",
            ]
        )

    def h21_ui_text(self) -> str:
        return self.pick(
            [
                "Your password must be at least 12 characters",
                "Incorrect account number or password",
                "Passwort vergessen?",
                "Le mot de passe a expiré",
                "Wpisz hasło do konta",
                "Введите пароль",
                "Cyfrinair anghywir",
                "Contraseña incorrecta",
                "We will never ask for your password by phone",
            ]
        )

    # ------------------------------------------------------------------ negatives: hashes, ciphertext
    def h21_bcrypt(self) -> str:
        return self.pick(["$2b$12$", "$2a$10$", "$2y$11$"]) + self.s(53, CRYPT64)

    def h21_argon2(self) -> str:
        salt = self.h21_util_b64(16, pad=False)
        return f"$argon2id$v=19$m=65536,t=3,p=4${salt}${self.h21_util_b64(32, pad=False)}"

    def h21_sha512crypt(self) -> str:
        return f"$6$rounds=656000${self.s(16, CRYPT64)}${self.s(86, CRYPT64)}"

    def h21_mssql_hash(self) -> str:
        return "0x0200" + self.s(136, HEXU)

    def h21_scram(self) -> str:
        return (
            f"SCRAM-SHA-256$4096:{self.h21_util_b64(16)}$"
            f"{self.h21_util_b64(32)}:{self.h21_util_b64(32)}"
        )

    def h21_apr1(self) -> str:
        return f"$apr1${self.s(8, CRYPT64)}${self.s(22, CRYPT64)}"

    def h21_geoserver_digest(self) -> str:
        return "digest1:" + self.h21_util_b64(48)

    def h21_mosquitto_hash(self) -> str:
        return f"$7$101${self.h21_util_b64(12)}${self.h21_util_b64(64)}"

    def h21_sops(self) -> str:
        return (
            f"ENC[AES256_GCM,data:{self.h21_util_b64(self.rng.randrange(10, 40))},"
            f"iv:{self.h21_util_b64(32)},tag:{self.h21_util_b64(16)},type:str]"
        )

    def h21_ansible_vault(self) -> str:
        body = self.s(80 * 5, HEX)
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def h21_jasypt(self) -> str:
        return "ENC(" + self.h21_util_b64(self.rng.choice([32, 48])) + ")"

    def h21_jenkins_enc(self) -> str:
        return "{AQAAABAAAAAQ" + self.h21_util_b64(36) + "}"

    def h21_fortigate_enc(self) -> str:
        return "ENC " + self.h21_util_b64(self.rng.choice([60, 84]))

    def h21_dpapi_cipher(self) -> str:
        return "AQAAANCMnd8BFdERjHoAwE/Cl+sBAAAA" + self.h21_util_b64(180)

    def h21_sealed(self) -> str:
        return "AgB" + self.h21_util_b64(self.rng.choice([360, 420]))

    def h21_kms_blob(self) -> str:
        return "AQICAHh" + self.h21_util_b64(150)

    def h21_mvn_enc(self) -> str:
        return "{" + self.h21_util_b64(24) + "}"

    def h21_wsse_digest(self) -> str:
        return self.h21_util_b64(20)

    # ------------------------------------------------------------------ negatives: public material
    def h21_cert(self) -> str:
        return self.h21_util_armor("CERTIFICATE", 48 * self.rng.randrange(12, 18))

    def h21_public_pem(self) -> str:
        return self.h21_util_armor("PUBLIC KEY", 294)

    def h21_ssh_pub(self) -> str:
        if self.rng.randrange(2):
            body = base64.b64encode(
                b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00 " + self.rng.randbytes(32)
            )
            return f"ssh-ed25519 {body.decode()} {self.pick(self.users)}@bcu-jump01"
        body = base64.b64encode(
            b"\x00\x00\x00\x07ssh-rsa\x00\x00\x00\x03\x01\x00\x01" + self.rng.randbytes(260)
        )
        return (
            f"ssh-rsa {body.decode()} contractor-{self.pick(['gridworks', 'aquatech', 'heatnet'])}"
        )

    def h21_pgp_public(self) -> str:
        body = base64.b64encode(self.rng.randbytes(48 * 10)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        check = base64.b64encode(self.rng.randbytes(3)).decode()
        return (
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n"
            + "\n".join(rows)
            + f"\n={check}\n-----END PGP PUBLIC KEY BLOCK-----"
        )

    def h21_host_fpr(self) -> str:
        return "SHA256:" + self.h21_util_b64(32, pad=False)

    def h21_stripe_pk(self) -> str:
        return "pk_live_" + self.s(99, ALNUM)

    def h21_mapbox_pk(self) -> str:
        claims = {"u": self.pick(["brennock-gis", "bcu-outage"]), "a": "cl" + self.s(23, LOWNUM)}
        mid = (
            base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode())
            .decode()
            .rstrip("=")
        )
        return f"pk.{mid}.{self.s(22, URLSAFE)}"

    def h21_oauth_client_id(self) -> str:
        if self.rng.randrange(2):
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        return f"{self.s(12, DIGITS)}-{self.s(32, LOWNUM)}.apps.googleusercontent.com"

    # ------------------------------------------------------------------ negatives: identifiers
    def h21_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def h21_git_sha(self) -> str:
        return self.s(40, HEX)

    def h21_sri(self) -> str:
        return "sha384-" + self.h21_util_b64(48)

    def h21_meter_id(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return "LGZ" + self.s(13, DIGITS)  # manufacturer flag + serial
        if shape == 1:
            return "16" + self.s(11, DIGITS)  # MPAN core
        if shape == 2:
            return "8716" + self.s(14, DIGITS)  # EAN-18 connection id
        return self.s(8, DIGITS) + "-" + self.pick(["W", "E", "H"]) + self.s(6, UPNUM)

    def h21_imei(self) -> str:
        if self.rng.randrange(2):
            return "35" + self.s(13, DIGITS)
        return "8944" + self.s(15, DIGITS)

    def h21_pi_webid(self) -> str:
        return "F1DP" + self.s(18, URLSAFE) + "AAAA" + self.s(26, URLSAFE)

    def h21_arcgis_item(self) -> str:
        return self.s(32, HEX)

    def h21_opc_nodeid(self) -> str:
        return self.pick(
            [
                "ns=2;s=WTW_Ashgrove.Filter3.TurbidityNTU",
                "ns=3;g=" + self.h21_uuid(),
                "ns=4;b=" + self.h21_util_b64(18),
                "ns=2;s=Substation_Kilnfield.T1.OilTemp",
            ]
        )

    def h21_twilio_sid(self) -> str:
        return self.pick(["AC", "MG", "PN"]) + self.s(32, HEX)

    def h21_trace_id(self) -> str:
        return self.s(32, HEX)


VALUES = Heldout21Values


def _t(path: str, gen: str, positive: bool, text: str) -> evalset.Template:
    return (path, textwrap.dedent(text).lstrip("\n"), gen, positive)


TEMPLATES: list[evalset.Template] = []

# ==================================================================== SCADA / OT
TEMPLATES += [
    _t(
        "ot/historian/pi-connector/appsettings.Production.json",
        "h21_pw",
        True,
        """
        {
          "Logging": { "LogLevel": { "Default": "Information", "System.Net.Http": "Warning" } },
          "PiWebApi": {
            "BaseUrl": "https://piwebapi.ot.bcu.local/piwebapi",
            "AuthMode": "Basic",
            "Username": "BCU-OT\\\\svc_pi_reader",
            "Password": "{V}",
            "VerifyTls": false
          },
          "Export": {
            "Sql": "Server=sqlhist02.ot.bcu.local;Database=HistorianExport;User Id=pi_export;Password={V2};Encrypt=False",
            "BatchSize": 5000
          }
        }
        """,
    ),
    _t(
        "ot/historian/pi-connector/appsettings.json",
        "h21_cs_ref",
        False,
        """
        // Values are bound in Program.cs; the real ones come from Key Vault via managed identity.
        // PiWebApi:Password      -> {V}
        // Export:SqlPassword     -> {V2}
        {
          "PiWebApi": {
            "BaseUrl": "https://piwebapi.ot.bcu.local/piwebapi",
            "AuthMode": "Kerberos"
          },
          "Export": { "BatchSize": 5000 }
        }
        """,
    ),
    _t(
        "ot/historian/pi-connector/tags/ashgrove_wtw.csv",
        "h21_pi_webid",
        False,
        """
        tag,description,uom,webid
        WTW_ASH.FLT3.TURB,Filter 3 turbidity,NTU,{V}
        WTW_ASH.CL2.RES,Final water chlorine residual,mg/l,{V2}
        WTW_ASH.RWP1.FLOW,Raw water pump 1 flow,Ml/d,{V3}
        DH_KLN.HX2.TSUP,Kilnfield heat exchanger 2 supply temperature,degC,{V4}
        """,
    ),
    _t(
        "ot/opcua/collector/collector.py",
        "h21_pw",
        True,
        """
        import asyncio
        import logging

        from asyncua import Client

        ENDPOINT = "opc.tcp://kepware01.ot.bcu.local:49320"
        USER = "opc_collector"
        PASSWORD = "{V}"

        log = logging.getLogger("opcua-collector")


        async def main() -> None:
            client = Client(url=ENDPOINT, timeout=10)
            client.set_user(USER)
            client.set_password(PASSWORD)
            await client.set_security_string(
                "Basic256Sha256,SignAndEncrypt,certs/collector.der,certs/collector.key.pem"
            )
            async with client:
                node = client.get_node("ns=2;s=Reservoir_Hillcrest.Level")
                log.info("level=%s", await node.read_value())


        if __name__ == "__main__":
            asyncio.run(main())
        """,
    ),
    _t(
        "ot/opcua/collector/tests/test_collector.py",
        "h21_fake",
        False,
        """
        import pytest

        from collector import settings


        @pytest.fixture
        def opc_env(monkeypatch):
            monkeypatch.setenv("OPC_USER", "tester")
            monkeypatch.setenv("OPC_PASSWORD", "{V}")
            monkeypatch.setenv("OPC_ENDPOINT", "opc.tcp://localhost:4840")


        def test_settings_reads_env(opc_env):
            cfg = settings.load()
            assert cfg.password == "{V}"
            assert cfg.endpoint.startswith("opc.tcp://localhost")
        """,
    ),
    _t(
        "ot/opcua/nodes/pump_stations.yaml",
        "h21_opc_nodeid",
        False,
        """
        # OPC UA node ids polled by the collector (Kepware channel PS_*)
        stations:
          - name: Hillcrest booster
            level: "{V}"
            discharge_pressure: "{V2}"
          - name: Kilnfield DH pump house
            supply_temp: "{V3}"
        poll_interval_ms: 1000
        """,
    ),
    _t(
        "ot/modbus-gateway/config/gateway.toml",
        "h21_mqtt_pw",
        True,
        """
        [modbus]
        port = "/dev/ttyS1"
        baud = 19200
        parity = "E"
        unit_ids = [1, 2, 3, 7]

        [mqtt]
        broker = "mqtts://mqtt.ot.bcu.local:8883"
        client_id = "mbgw-ps-hillcrest"
        username = "mbgw-hillcrest"
        password = "{V}"
        topic_prefix = "bcu/water/ps/hillcrest"

        [mqtt.tls]
        ca_file = "/etc/mbgw/ca.pem"
        """,
    ),
    _t(
        "ot/mqtt/mosquitto/passwd",
        "h21_mosquitto_hash",
        False,
        """
        mbgw-hillcrest:{V}
        mbgw-kilnfield:{V2}
        telegraf:{V3}
        node-red:{V4}
        """,
    ),
    _t(
        "ot/mqtt/mosquitto/conf.d/bridge-cloud.conf",
        "h21_mqtt_pw",
        True,
        """
        # Bridge OT broker -> Azure Event Grid MQTT (one-way, telemetry only)
        connection bcu-cloud
        address bcu-telemetry.westeurope-1.ts.eventgrid.azure.net:8883
        bridge_protocol_version mqttv50
        remote_clientid ot-bridge-01
        remote_username ot-bridge-01
        remote_password {V}
        bridge_cafile /etc/mosquitto/certs/DigiCertGlobalRootG3.crt.pem
        topic bcu/# out 1
        try_private true
        cleansession false
        """,
    ),
    _t(
        "ot/network/snmp/snmpd.conf",
        "h21_snmp_secret",
        True,
        """
        # net-snmp on the RTU concentrators (rtu-conc-01..04)
        sysLocation  "Kilnfield primary substation, relay room"
        sysContact   ot-network@brennockutilities.net

        rocommunity  {V}  10.40.0.0/16
        rwcommunity  {V2} 10.40.2.10

        createUser nms-poller SHA-256 "{V3}" AES "{V4}"
        rouser nms-poller priv
        """,
    ),
    _t(
        "ot/network/radius/clients.conf",
        "h21_psk",
        True,
        """
        # FreeRADIUS clients for OT switches and RTU routers
        client ot-core-sw01 {
            ipaddr = 10.40.0.2
            secret = {V}
            shortname = ot-core-sw01
            nas_type = cisco
        }

        client rtu-routers {
            ipaddr = 10.44.0.0/16
            secret = {V2}
            require_message_authenticator = yes
        }
        """,
    ),
    _t(
        "ot/network/ipsec/ipsec.secrets",
        "h21_psk",
        True,
        """
        # strongSwan PSKs for the substation tunnels (IKEv2). Certificates planned, see OTNET-212.
        10.44.10.1 10.40.0.1 : PSK "{V}"
        10.44.11.1 10.40.0.1 : PSK "{V2}"
        @gridworks-remote-access : PSK {V3}
        """,
    ),
    _t(
        "ot/network/firewalls/fgt-ot-dmz.conf",
        "h21_fortigate_enc",
        False,
        """
        config system admin
            edit "admin"
                set accprofile "super_admin"
                set vdom "root"
                set password {V}
            next
            edit "ro-audit"
                set accprofile "prof_admin_ro"
                set password {V2}
            next
        end
        config vpn ipsec phase1-interface
            edit "to-kilnfield"
                set interface "port3"
                set psksecret {V3}
            next
        end
        """,
    ),
    _t(
        "ot/historian/influx/telegraf.conf",
        "h21_influx_token",
        True,
        """
        [agent]
          interval = "10s"
          hostname = "tgf-ot-01"

        [[inputs.mqtt_consumer]]
          servers = ["ssl://mqtt.ot.bcu.local:8883"]
          topics = ["bcu/water/#", "bcu/heat/#"]
          username = "telegraf"
          data_format = "json_v2"

        [[outputs.influxdb_v2]]
          urls = ["https://influx.ot.bcu.local:8086"]
          token = "{V}"
          organization = "bcu-ot"
          bucket = "scada_raw"
        """,
    ),
    _t(
        "ot/historian/influx/telegraf.d/outputs.conf",
        "h21_placeholder",
        False,
        """
        # token injected by systemd EnvironmentFile=/etc/default/telegraf (root:telegraf 0640)
        # rotate: ansible-playbook rotate-influx.yml ; the unit reads INFLUX_TOKEN={V}
        [[outputs.influxdb_v2]]
          urls = ["https://influx.ot.bcu.local:8086"]
          token = "${INFLUX_TOKEN}"
          organization = "bcu-ot"
          bucket = "scada_raw"
        """,
    ),
    _t(
        "ot/dnp3/outstation-kilnfield/outstation.yaml",
        "h21_hex32_key",
        True,
        """
        # opendnp3 outstation profile, Kilnfield primary (feeder RTU 14)
        link:
          local_addr: 14
          remote_addr: 1
        secure_authentication:
          version: 5
          user: 1
          hmac: HMAC_SHA256_T16
          update_key: "{V}"
          # spare key staged for the 2025 rotation
          update_key_next: "{V2}"
        points:
          analog_inputs: 64
          binary_inputs: 128
        """,
    ),
    _t(
        "ot/historian/sql/logins_pi_af.sql",
        "h21_mssql_hash",
        False,
        """
        -- sp_help_revlogin output from sqlhist02 (PI AF / export), captured for the DR rebuild
        CREATE LOGIN [pi_export] WITH PASSWORD = {V} HASHED, SID = 0x4C2A9B01E33D4F8E9A1B2C3D4E5F6071, DEFAULT_DATABASE = [HistorianExport], CHECK_POLICY = ON
        CREATE LOGIN [af_service] WITH PASSWORD = {V2} HASHED, SID = 0x7D1E2F30415263748596A7B8C9DAEBFC, DEFAULT_DATABASE = [PIFD], CHECK_POLICY = ON
        """,
    ),
    _t(
        "ot/plc/backup/Backup-PlcProjects.ps1",
        "h21_pw",
        True,
        """
        <#
          Nightly pull of PLC project files from the engineering workstations to \\\\fs-ot01\\plc-backup
          Scheduled task on ews-ot-03, runs as BCU-OT\\svc_plcbackup
        #>
        param([string]$Target = '\\\\fs-ot01\\plc-backup')

        $user = 'BCU-OT\\svc_plcbackup'
        $pass = ConvertTo-SecureString '{V}' -AsPlainText -Force
        $cred = New-Object System.Management.Automation.PSCredential($user, $pass)

        New-PSDrive -Name PLC -PSProvider FileSystem -Root $Target -Credential $cred | Out-Null
        Get-ChildItem 'C:\\Projects\\TIA' -Recurse -Include *.ap17, *.zap17 |
            Copy-Item -Destination 'PLC:\\' -Force
        Remove-PSDrive PLC
        """,
    ),
    _t(
        "ot/plc/backup/Backup-PlcProjects.v2.ps1",
        "h21_ps_ref",
        False,
        """
        # v2: no password in the script any more (OTSEC-77); SecretManagement vault on ews-ot-03
        param([string]$Target = '\\\\fs-ot01\\plc-backup')

        $user = 'BCU-OT\\svc_plcbackup'
        $secure = {V}
        if ($secure -is [string]) { $secure = ConvertTo-SecureString $secure -AsPlainText -Force }
        $cred = [pscredential]::new($user, $secure)
        New-PSDrive -Name PLC -PSProvider FileSystem -Root $Target -Credential $cred | Out-Null
        """,
    ),
    _t(
        "ot/scada/alarm-forwarder/internal/sms/twilio.go",
        "h21_twilio_token",
        True,
        """
        package sms

        import (
        	"net/http"
        	"net/url"
        	"strings"
        )

        const (
        	accountSID = "AC3f9a1c07d4e2b85a6f0c19d2e7b4a830"
        	authToken  = "{V}"
        	fromNumber = "+441632960114"
        )

        // Send pages the on-call engineer when a SCADA alarm is not acknowledged in 10 minutes.
        func Send(to, body string) error {
        	form := url.Values{"To": {to}, "From": {fromNumber}, "Body": {body}}
        	req, err := http.NewRequest("POST",
        		"https://api.twilio.com/2010-04-01/Accounts/"+accountSID+"/Messages.json",
        		strings.NewReader(form.Encode()))
        	if err != nil {
        		return err
        	}
        	req.SetBasicAuth(accountSID, authToken)
        	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
        	_, err = http.DefaultClient.Do(req)
        	return err
        }
        """,
    ),
    _t(
        "ot/scada/alarm-forwarder/internal/sms/config.go",
        "h21_go_ref",
        False,
        """
        package sms

        import "os"

        type Config struct {
        	AccountSID string
        	AuthToken  string
        }

        func mustEnv(k string) string {
        	v := os.Getenv(k)
        	if v == "" {
        		panic(k + " is not set")
        	}
        	return v
        }

        func Load() Config {
        	return Config{
        		AccountSID: os.Getenv("TWILIO_ACCOUNT_SID"),
        		AuthToken:  {V},
        	}
        }
        """,
    ),
    _t(
        "ot/scada/alarm-forwarder/internal/sms/numbers.go",
        "h21_twilio_sid",
        False,
        """
        package sms

        // Twilio resources used by the forwarder (identifiers only; auth comes from the environment)
        var (
        	AccountSID          = "{V}"
        	MessagingServiceSID = "{V2}"
        	OnCallNumberSID     = "{V3}"
        )
        """,
    ),
    _t(
        "ot/scada/hmi/src/main/resources/i18n/messages_de.properties",
        "h21_ui_text",
        False,
        """
        login.title=Anmeldung Leitwarte
        login.username=Benutzername
        login.password=Kennwort
        login.error.badCredentials={V}
        login.help={V2}
        alarm.ack=Quittieren
        """,
    ),
    _t(
        "ot/rtu/cellular/modem-inventory.csv",
        "h21_imei",
        False,
        """
        site,router,imei,iccid,apn,installed
        PS Hillcrest,RUT955,{V},{V2},bcu.m2m.private,2022-09-14
        DH Kilnfield,RUT955,{V3},{V4},bcu.m2m.private,2023-01-30
        """,
    ),
    _t(
        "ot/rtu/cellular/provision-router.sh",
        "h21_weak_pw",
        True,
        """
        #!/bin/sh
        # Provision a new RUT955 at a pump station. Usage: ./provision-router.sh 10.44.12.1 PS-Ashgrove
        set -eu
        IP="$1"; SITE="$2"
        ADMIN_PW='{V}'

        sshpass -p "$ADMIN_PW" ssh -o StrictHostKeyChecking=no root@"$IP" <<EOS
        uci set system.@system[0].hostname="$SITE"
        uci set network.mob1s1a1.apn='bcu.m2m.private'
        uci commit
        EOS
        echo "done: $SITE ($IP)"
        """,
    ),
    _t(
        "ot/scada/README.md",
        "h21_weak_pw",
        True,
        """
        # SCADA engineering notes

        ## HMI clients in the control room

        The six HMI clients auto-login as the `operator` Windows account. If the session is
        locked, unlock with `operator` / `{V}` (ask the shift lead before you do).

        ## Engineering workstation

        - ews-ot-03: local admin `otadmin`, password `{V2}`; the domain account is preferred.
        - Kepware config tool runs as the same account.
        """,
    ),
]

# ==================================================================== smart-meter head-end (AMI)
TEMPLATES += [
    _t(
        "ami/hes-adapter/src/main/resources/application-prod.properties",
        "h21_oracle_pw",
        True,
        """
        # HES adapter: pulls interval reads from the head-end and pushes them to the MDM
        server.port=8443
        spring.datasource.url=jdbc:oracle:thin:@//mdmdb-scan.bcu.local:1521/MDMPRD
        spring.datasource.username=HES_ADAPTER
        spring.datasource.password={V}
        spring.jpa.hibernate.ddl-auto=validate

        hes.soap.endpoint=https://hes01.ami.bcu.local/MeterReadService/v2
        hes.soap.username=BCU_MDM_INT
        hes.soap.password={V2}
        hes.read.window-hours=48
        """,
    ),
    _t(
        "ami/hes-adapter/src/main/resources/application.properties",
        "h21_spring_ref",
        False,
        """
        server.port=8080
        spring.datasource.url=jdbc:oracle:thin:@//${MDM_DB_HOST}:1521/${MDM_DB_SERVICE}
        spring.datasource.username=${MDM_DB_USER:HES_ADAPTER}
        spring.datasource.password={V}
        hes.soap.endpoint=${HES_ENDPOINT}
        hes.soap.username=${HES_USER}
        hes.soap.password={V2}
        management.endpoints.web.exposure.include=health,info,prometheus
        """,
    ),
    _t(
        "ami/hes-adapter/src/main/resources/application-uat.properties",
        "h21_jasypt",
        False,
        """
        # values encrypted with jasypt (PBEWITHHMACSHA512ANDAES_256); the master password is
        # injected as JASYPT_ENCRYPTOR_PASSWORD by the deployment, never committed
        spring.datasource.url=jdbc:oracle:thin:@//mdmdb-uat.bcu.local:1521/MDMUAT
        spring.datasource.username=HES_ADAPTER
        spring.datasource.password={V}
        hes.soap.password={V2}
        """,
    ),
    _t(
        "ami/dlms/keys/meter_keys_batch_2024-11.csv",
        "h21_hex32_key",
        True,
        """
        # Key transfer file from the meter manufacturer (batch 2024-11, 3 of 500 rows kept for the
        # commissioning test). GUEK = global unicast encryption key, GAK = authentication key.
        serial,system_title,guek,gak,suite
        LGZ8123400017,4C475A0007BEA5F1,{V},{V2},0
        LGZ8123400018,4C475A0007BEA5F2,{V3},{V4},0
        LGZ8123400019,4C475A0007BEA5F3,{V5},{V6},0
        """,
    ),
    _t(
        "ami/dlms/keys/README.md",
        "h21_dlms_example",
        False,
        """
        # DLMS keys in this folder

        Real key transfer files are **not** kept in git: they go straight into the HSM-backed key
        store on hes01. The sample file only uses the example keys from the DLMS UA Green Book:

        - block cipher key (GUEK): `{V}`
        - authentication key (GAK): `{V2}`
        - system title used in the examples: `{V3}`

        Anything else you find here is a mistake: tell ami-security@brennockutilities.net.
        """,
    ),
    _t(
        "ami/dlms/tools/read_register.py",
        "h21_hex32_key",
        True,
        """
        \"\"\"Read the active energy register of one meter over the optical probe (commissioning).\"\"\"
        from gurux_dlms import GXDLMSClient
        from gurux_dlms.enums import Authentication, InterfaceType, Security

        METER_SERIAL = "LGZ8123400017"
        BLOCK_CIPHER_KEY = bytes.fromhex("{V}")
        AUTH_KEY = bytes.fromhex("{V2}")


        def make_client() -> GXDLMSClient:
            client = GXDLMSClient(True, 1, 16, Authentication.HIGH_GMAC, None, InterfaceType.HDLC)
            client.ciphering.security = Security.AUTHENTICATION_ENCRYPTION
            client.ciphering.systemTitle = bytes.fromhex("4D4D4D0000000001")
            client.ciphering.blockCipherKey = BLOCK_CIPHER_KEY
            client.ciphering.authenticationKey = AUTH_KEY
            return client
        """,
    ),
    _t(
        "ami/dlms/tools/lls_commissioning.ini",
        "h21_meter_lls",
        True,
        """
        ; Low-level security passwords for the commissioning probe (per meter family)
        [E360_single_phase]
        client_address=17
        authentication=LOW
        password={V}

        [E570_ct]
        client_address=17
        authentication=LOW
        password={V2}
        """,
    ),
    _t(
        "ami/mdm/sql/reads_2024_q4_sample.sql",
        "h21_meter_id",
        False,
        """
        -- Sample of interval reads for the billing reconciliation (INC-40122)
        INSERT INTO mdm.interval_read (meter_id, read_ts, kwh, quality) VALUES
          ('{V}', '2024-11-03 00:30:00+00', 0.412, 'A'),
          ('{V2}', '2024-11-03 00:30:00+00', 1.087, 'A'),
          ('{V3}', '2024-11-03 00:30:00+00', 0.000, 'E');
        """,
    ),
    _t(
        "ami/wmbus/wmbusmeters.d/heat_meters.conf",
        "h21_hex32_key",
        True,
        """
        # wmbusmeters: district heating meters on the Kilnfield estate (drive-by collector)
        name=DH_Kilnfield_Block_A
        driver=multical603
        id=71002514
        key={V}

        name=DH_Kilnfield_Block_B
        driver=multical603
        id=71002515
        key={V2}
        """,
    ),
    _t(
        "ami/wmbus/wmbusmeters.d/water_meter.example",
        "h21_dlms_example",
        False,
        """
        # template for a new water meter; copy, rename and fill in the real AES key from the
        # manufacturer portal. NOKEY means unencrypted telegrams.
        name=Water_Example
        driver=iperl
        id=12345678
        key={V}
        """,
    ),
    _t(
        "ami/hes-client/HesClient/HeadEndClient.cs",
        "h21_pw",
        True,
        """
        using System.Net;
        using System.ServiceModel;

        namespace Bcu.Ami.HesClient
        {
            public sealed class HeadEndClient
            {
                private const string Endpoint = "https://hes01.ami.bcu.local/MeterReadService/v2";

                public MeterReadServiceClient Create()
                {
                    var binding = new BasicHttpsBinding();
                    binding.Security.Transport.ClientCredentialType = HttpClientCredentialType.Basic;
                    var client = new MeterReadServiceClient(binding, new EndpointAddress(Endpoint));
                    client.ClientCredentials.UserName.UserName = "BCU_MDM_INT";
                    client.ClientCredentials.UserName.Password = "{V}";
                    return client;
                }

                public static NetworkCredential DisconnectOperator() =>
                    new NetworkCredential("BCU_DISCONNECT", "{V2}", "AMI");
            }
        }
        """,
    ),
    _t(
        "ami/hes-client/HesClient/HeadEndOptions.cs",
        "h21_cs_ref",
        False,
        """
        namespace Bcu.Ami.HesClient
        {
            public sealed class HeadEndOptions
            {
                public string Endpoint { get; set; } = "";
                public string UserName { get; set; } = "";
                public string Password { get; set; } = "";
            }

            internal static class HeadEndOptionsExtensions
            {
                public static HeadEndOptions Resolve(this HeadEndOptions o, IConfiguration configuration)
                {
                    o.Password = {V};
                    return o;
                }
            }
        }
        """,
    ),
    _t(
        "ami/hes-adapter/logs/soap-trace-2024-11-18.log",
        "h21_pw",
        True,
        """
        2024-11-18 02:00:03,114 DEBUG [hes-poll-1] o.a.c.s.LoggingOutInterceptor - Outbound Message
        ---------------------------
        Address: https://hes01.ami.bcu.local/MeterReadService/v2
        Payload: <soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header><wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"><wsse:UsernameToken><wsse:Username>BCU_MDM_INT</wsse:Username><wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText">{V}</wsse:Password></wsse:UsernameToken></wsse:Security></soap:Header><soap:Body><GetIntervalReads><From>2024-11-16T00:00:00Z</From></GetIntervalReads></soap:Body></soap:Envelope>
        --------------------------------------
        2024-11-18 02:00:04,902 INFO  [hes-poll-1] c.b.a.HesPoller - received 48211 reads
        """,
    ),
    _t(
        "ami/hes-adapter/logs/soap-trace-2024-12-02.log",
        "h21_wsse_digest",
        False,
        """
        2024-12-02 02:00:02,771 DEBUG [hes-poll-1] o.a.c.s.LoggingOutInterceptor - Outbound Message (PasswordDigest since CHG-3391)
        Payload: <wsse:UsernameToken><wsse:Username>BCU_MDM_INT</wsse:Username><wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">{V}</wsse:Password><wsse:Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">{V2}</wsse:Nonce><wsu:Created>2024-12-02T02:00:02Z</wsu:Created></wsse:UsernameToken>
        2024-12-02 02:00:03,388 INFO  [hes-poll-1] c.b.a.HesPoller - received 47960 reads
        """,
    ),
    _t(
        "ami/hes-adapter/logs/hes-adapter-2024-12-09.log",
        "h21_masked",
        False,
        """
        2024-12-09T02:00:01.201Z INFO  HesPoller  starting poll window=48h user=BCU_MDM_INT password={V}
        2024-12-09T02:00:01.377Z DEBUG HttpClient  > POST /MeterReadService/v2 Authorization: {V2}
        2024-12-09T02:00:03.055Z INFO  HesPoller  received 48003 reads, 12 estimated
        """,
    ),
    _t(
        "ami/mdm/export/lftp-push-to-billing.sh",
        "h21_url_pw",
        True,
        """
        #!/usr/bin/env bash
        # Push the nightly billing determinants file to SAP IS-U's inbound SFTP
        set -euo pipefail
        FILE="/data/export/billing_determinants_$(date +%F).csv"
        lftp -c "set sftp:auto-confirm yes; open sftp://mdm_export:{V}@sapisu-ftp.bcu.local; cd /inbound/mdm; put $FILE"
        """,
    ),
    _t(
        "ami/kafka-connect/connectors/mdm-jdbc-source.json",
        "h21_placeholder",
        False,
        """
        {
          "name": "mdm-events-source",
          "config": {
            "connector.class": "io.confluent.connect.jdbc.JdbcSourceConnector",
            "connection.url": "jdbc:postgresql://mdm-pg.bcu.local:5432/mdm",
            "connection.user": "connect_source",
            "connection.password": "${file:/opt/connect/secrets/mdm.properties:password}",
            "comment": "the file provider above resolves the password; '{V}' in older copies was a placeholder",
            "mode": "timestamp"
          }
        }
        """,
    ),
    _t(
        "ami/deploy/k8s/hes-adapter-secret.yaml",
        "h21_b64_pw",
        True,
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: hes-adapter
          namespace: ami
        type: Opaque
        data:
          MDM_DB_PASSWORD: {V}
          HES_PASSWORD: {V2}
        """,
    ),
    _t(
        "ami/deploy/k8s/hes-adapter-sealedsecret.yaml",
        "h21_sealed",
        False,
        """
        apiVersion: bitnami.com/v1alpha1
        kind: SealedSecret
        metadata:
          name: hes-adapter
          namespace: ami
        spec:
          encryptedData:
            MDM_DB_PASSWORD: {V}
            HES_PASSWORD: {V2}
          template:
            type: Opaque
        """,
    ),
    _t(
        "ami/deploy/helm/hes-adapter/templates/secret.yaml",
        "h21_helm_ref",
        False,
        """
        {{- if not .Values.global.existingSecret }}
        apiVersion: v1
        kind: Secret
        metadata:
          name: {{ include "hes-adapter.fullname" . }}
        type: Opaque
        stringData:
          MDM_DB_PASSWORD: {V}
          HES_API_KEY: {V2}
        {{- end }}
        """,
    ),
    _t(
        "ami/deploy/helm/hes-adapter/values-prod.yaml",
        "h21_api_key",
        True,
        """
        replicaCount: 2
        image:
          repository: acrbcuprod.azurecr.io/ami/hes-adapter
          tag: 3.8.1
        hes:
          endpoint: https://hes01.ami.bcu.local/MeterReadService/v2
          apiKey: {V}
          outageApiKey: {V2}
        resources:
          limits: { cpu: "1", memory: 1Gi }
        """,
    ),
]

# ==================================================================== billing and payments
TEMPLATES += [
    _t(
        "billing/portal/.env.production",
        "h21_stripe_sk",
        True,
        """
        NODE_ENV=production
        PUBLIC_URL=https://myaccount.brennockutilities.net
        DATABASE_URL=postgres://portal@pg-portal.bcu.local:5432/portal?sslmode=require
        STRIPE_SECRET_KEY={V}
        STRIPE_REFUND_KEY={V2}
        SESSION_TTL_MINUTES=30
        """,
    ),
    _t(
        "billing/portal/.env.example",
        "h21_key_placeholder",
        False,
        """
        NODE_ENV=development
        PUBLIC_URL=http://localhost:3000
        DATABASE_URL=postgres://portal:portal@localhost:5432/portal
        STRIPE_SECRET_KEY={V}
        STRIPE_WEBHOOK_SECRET={V2}
        GOOGLE_MAPS_KEY={V3}
        """,
    ),
    _t(
        "billing/portal/src/lib/stripe-client.ts",
        "h21_stripe_pk",
        False,
        """
        import { loadStripe } from "@stripe/stripe-js";

        // Publishable keys are meant to ship to the browser.
        const PUBLISHABLE_KEY =
          process.env.NODE_ENV === "production"
            ? "{V}"
            : "{V2}";

        export const stripePromise = loadStripe(PUBLISHABLE_KEY);
        """,
    ),
    _t(
        "billing/portal/src/server/payments.ts",
        "h21_js_ref",
        False,
        """
        import Stripe from "stripe";

        const secret = {V};
        if (!secret) throw new Error("STRIPE_SECRET_KEY missing");

        export const stripe = new Stripe(secret, { apiVersion: "2024-06-20" });

        export async function createPaymentIntent(accountNo: string, pence: number) {
          return stripe.paymentIntents.create({
            amount: pence,
            currency: "gbp",
            metadata: { accountNo },
          });
        }
        """,
    ),
    _t(
        "billing/portal/config/paypal.yml",
        "h21_paypal_secret",
        True,
        """
        production:
          mode: live
          client_id: AVb7Qm2Lx0Rk3PzT9wNcE5hJ1uYgF8sDa4Kj6iOq2Xn-HtWe0ZrB3yMvCpLf
          client_secret: {V}
          webhook_id: 4JH86294D6297924G
        sandbox:
          mode: sandbox
          client_id: AcT4nW9qLp2Rx7KbZ0mYv3Hs8dJg5eFu1Oi
          client_secret: {V2}
        """,
    ),
    _t(
        "billing/legacy/inc/db.inc.php",
        "h21_pw",
        True,
        """
        <?php
        // Legacy "pay by card over the phone" screens (2011). Kept until the IVR migration ends.
        $dbhost = 'sqlbill01.bcu.local';
        $dbuser = 'billweb';
        $dbpass = '{V}';
        $dbname = 'BILLING';

        $conn = sqlsrv_connect($dbhost, [
            'Database' => $dbname,
            'UID' => $dbuser,
            'PWD' => $dbpass,
        ]);
        if ($conn === false) {
            die(print_r(sqlsrv_errors(), true));
        }
        """,
    ),
    _t(
        "billing/legacy/inc/db.inc.php.dist",
        "h21_php_ref",
        False,
        """
        <?php
        // copy to db.inc.php on the server; the password comes from the IIS app pool environment
        $dbhost = getenv('BILLING_DB_HOST') ?: 'sqlbill01.bcu.local';
        $dbuser = 'billweb';
        $dbpass = {V};
        $dbname = 'BILLING';
        """,
    ),
    _t(
        "billing/sap-isu/rfc/sapnwrfc.ini",
        "h21_pw",
        True,
        """
        DEST=ISU_PRD
        ASHOST=sapisu-prd.bcu.local
        SYSNR=00
        CLIENT=100
        USER=RFC_PORTAL
        PASSWD={V}
        LANG=EN

        DEST=ISU_QAS
        ASHOST=sapisu-qas.bcu.local
        SYSNR=10
        CLIENT=200
        USER=RFC_PORTAL
        PASSWD={V2}
        """,
    ),
    _t(
        "billing/sap-isu/rfc/extract_open_items.py",
        "h21_py_ref",
        False,
        """
        \"\"\"Pull open items (FKKOP) for the arrears dashboard.\"\"\"
        import os

        from pyrfc import Connection


        def connect() -> Connection:
            return Connection(
                ashost=os.environ.get("ISU_ASHOST", "sapisu-prd.bcu.local"),
                sysnr="00",
                client="100",
                user="RFC_PORTAL",
                passwd={V},
            )
        """,
    ),
    _t(
        "billing/portal/db/migrations/20240611_create_roles.sql",
        "h21_pw",
        True,
        """
        -- roles for the customer portal (PostgreSQL 15)
        CREATE ROLE portal_app LOGIN PASSWORD '{V}' CONNECTION LIMIT 50;
        CREATE ROLE portal_readonly LOGIN PASSWORD '{V2}';
        GRANT CONNECT ON DATABASE portal TO portal_app, portal_readonly;
        GRANT USAGE ON SCHEMA accounts TO portal_app, portal_readonly;
        GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA accounts TO portal_app;
        GRANT SELECT ON ALL TABLES IN SCHEMA accounts TO portal_readonly;
        """,
    ),
    _t(
        "billing/portal/db/dump/roles_2024-10.sql",
        "h21_scram",
        False,
        """
        -- pg_dumpall --roles-only from pg-portal (passwords are SCRAM verifiers)
        CREATE ROLE portal_app;
        ALTER ROLE portal_app WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN PASSWORD '{V}';
        CREATE ROLE portal_readonly;
        ALTER ROLE portal_readonly WITH LOGIN PASSWORD '{V2}';
        """,
    ),
    _t(
        "billing/portal/db/seeds/test_customers.sql",
        "h21_bcrypt",
        False,
        """
        -- seeded accounts for the UAT portal; passwords are bcrypt hashes of the UAT test phrases
        INSERT INTO accounts.web_user (email, account_no, password_hash, mfa) VALUES
          ('uat.customer1@example.com', '4100000001', '{V}', false),
          ('uat.customer2@example.com', '4100000002', '{V2}', true),
          ('uat.landlord@example.com',  '4100000077', '{V3}', true);
        """,
    ),
    _t(
        "billing/portal/src/server/auth/hash.test.ts",
        "h21_argon2",
        False,
        """
        import { verify } from "@node-rs/argon2";
        import { describe, expect, it } from "vitest";

        // hashes produced by the migration from the legacy portal (argon2id, OWASP params)
        const LEGACY_HASH = "{V}";
        const ROTATED_HASH = "{V2}";

        describe("password hashes", () => {
          it("keeps argon2id parameters", () => {
            expect(LEGACY_HASH.startsWith("$argon2id$v=19$m=65536")).toBe(true);
            expect(ROTATED_HASH).not.toEqual(LEGACY_HASH);
          });
        });
        """,
    ),
    _t(
        "billing/notifications/app/senders.py",
        "h21_sendgrid",
        True,
        """
        from sendgrid import SendGridAPIClient
        from sendgrid.helpers.mail import Mail

        # TODO(billing-ops): move to Key Vault before go-live
        SENDGRID_API_KEY = "{V}"
        FROM = "no-reply@brennockutilities.net"


        def send_bill_ready(to: str, account_no: str, pdf_url: str) -> int:
            message = Mail(
                from_email=FROM,
                to_emails=to,
                subject=f"Your bill for account {account_no} is ready",
                html_content=f'<p>Your latest bill is ready. <a href="{pdf_url}">View bill</a></p>',
            )
            return SendGridAPIClient(SENDGRID_API_KEY).send(message).status_code
        """,
    ),
    _t(
        "billing/portal/web/Web.config",
        "h21_pw",
        True,
        """
        <?xml version="1.0" encoding="utf-8"?>
        <configuration>
          <connectionStrings>
            <add name="Billing" connectionString="Data Source=sqlbill01.bcu.local;Initial Catalog=BILLING;User ID=billweb;Password={V};MultipleActiveResultSets=True" providerName="System.Data.SqlClient" />
            <add name="Arrears" connectionString="Data Source=sqlbill02.bcu.local;Initial Catalog=ARREARS;User ID=arrears_ro;Password={V2}" providerName="System.Data.SqlClient" />
          </connectionStrings>
          <appSettings>
            <add key="CardGateway.Url" value="https://secure.paygate.example/api" />
          </appSettings>
        </configuration>
        """,
    ),
    _t(
        "billing/portal/web/Web.Release.config",
        "h21_dpapi_cipher",
        False,
        """
        <?xml version="1.0" encoding="utf-8"?>
        <!-- connectionStrings protected with aspnet_regiis -pe (DataProtectionConfigurationProvider) -->
        <configuration>
          <connectionStrings configProtectionProvider="DataProtectionConfigurationProvider">
            <EncryptedData>
              <CipherData>
                <CipherValue>{V}</CipherValue>
              </CipherData>
            </EncryptedData>
          </connectionStrings>
        </configuration>
        """,
    ),
    _t(
        "billing/portal/frontend/src/locales/cy.json",
        "h21_ui_text",
        False,
        """
        {
          "login": {
            "accountNumber": "Rhif cyfrif",
            "password": "Cyfrinair",
            "error": "{V}",
            "notice": "{V2}"
          },
          "reset": { "title": "Ailosod cyfrinair" }
        }
        """,
    ),
    _t(
        "billing/direct-debit/bacs/upload_aruds.sh",
        "h21_pw",
        True,
        """
        #!/bin/bash
        # Upload the daily AUDDIS/ADDACS files to the bureau. Cron: 17:30 Mon-Fri on billbatch01
        BUREAU_HOST=sftp.bacs-bureau.example.net
        BUREAU_USER=bcu_sun_440812
        export SSHPASS='{V}'
        for f in /srv/bacs/outbound/*.txt; do
          sshpass -e sftp -oBatchMode=no -b - "$BUREAU_USER@$BUREAU_HOST" <<< "put $f /in/"
        done
        """,
    ),
    _t(
        "billing/direct-debit/bacs/upload_aruds.v2.sh",
        "h21_sh_ref",
        False,
        """
        #!/bin/bash
        # v2: password pulled at run time (BILL-2290); nothing secret on disk
        BUREAU_HOST=sftp.bacs-bureau.example.net
        BUREAU_USER=bcu_sun_440812
        export SSHPASS={V}
        for f in /srv/bacs/outbound/*.txt; do
          sshpass -e sftp -b - "$BUREAU_USER@$BUREAU_HOST" <<< "put $f /in/"
        done
        unset SSHPASS
        """,
    ),
    _t(
        "billing/direct-debit/pgp/bureau-public.asc",
        "h21_pgp_public",
        False,
        """
        {V}
        """,
    ),
    _t(
        "billing/direct-debit/pgp/bcu-signing-secret.asc",
        "h21_pgp_private",
        True,
        """
        {V}
        """,
    ),
    _t(
        "billing/portal/docs/api/authentication.md",
        "h21_doc_authz",
        False,
        """
        # Portal API: authentication

        Partner calls use HTTP Basic. The example below is the one from the RFC:

        ```http
        GET /api/v1/accounts/4100000001/balance HTTP/1.1
        Host: api.example.com
        Authorization: {V}
        ```

        Bearer calls look the same with `Authorization: {V2}` and a token from `/oauth/token`.
        """,
    ),
    _t(
        "billing/portal/internal/auth/jwt.go",
        "h21_jwt_secret",
        True,
        """
        package auth

        import (
        	"time"

        	"github.com/golang-jwt/jwt/v5"
        )

        var signingKey = []byte("{V}")

        func Issue(accountNo string) (string, error) {
        	claims := jwt.MapClaims{
        		"sub": accountNo,
        		"iss": "myaccount.brennockutilities.net",
        		"exp": time.Now().Add(30 * time.Minute).Unix(),
        	}
        	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(signingKey)
        }
        """,
    ),
    _t(
        "billing/portal/internal/auth/jwt_test.go",
        "h21_fake",
        False,
        """
        package auth

        import "testing"

        func TestIssueRoundTrip(t *testing.T) {
        	signingKey = []byte("{V}")
        	tok, err := Issue("4100000001")
        	if err != nil || tok == "" {
        		t.Fatalf("issue: %v", err)
        	}
        }
        """,
    ),
    _t(
        "billing/portal/tests/fixtures/stripe_events.json",
        "h21_fake",
        False,
        """
        {
          "_comment": "fixture only: keys below are fake and rejected by Stripe",
          "secret_key": "{V}",
          "webhook_secret": "{V2}",
          "event": {
            "id": "evt_1OaXhK2eZvKYlo2CqT0p3Z9m",
            "type": "payment_intent.succeeded",
            "data": { "object": { "amount": 8450, "currency": "gbp" } }
          }
        }
        """,
    ),
    _t(
        "billing/portal/logs/portal-api-2024-10-14.log",
        "h21_basic_b64",
        True,
        """
        2024-10-14T09:12:44.018Z info  http  --> GET /api/v1/accounts/4102288713/balance
        2024-10-14T09:12:44.019Z debug http  headers {"host":"api.brennockutilities.net","authorization":"Basic {V}","user-agent":"Genesys-DataAction/1.0"}
        2024-10-14T09:12:44.102Z info  http  <-- 200 83ms
        """,
    ),
]

# ==================================================================== field-service mobile apps
TEMPLATES += [
    _t(
        "fieldservice/android/local.properties",
        "h21_google_key",
        True,
        """
        ## This file must *NOT* be checked into Version Control Systems,
        # as it contains information specific to your local configuration.
        sdk.dir=/Users/dmorgan/Library/Android/sdk
        MAPS_API_KEY={V}
        PLACES_API_KEY={V2}
        """,
    ),
    _t(
        "fieldservice/android/keystore.properties",
        "h21_pw",
        True,
        """
        storeFile=../signing/bcu-fieldservice-upload.jks
        storePassword={V}
        keyAlias=fieldservice-upload
        keyPassword={V2}
        """,
    ),
    _t(
        "fieldservice/android/app/build.gradle.kts",
        "h21_kt_ref",
        False,
        """
        android {
            namespace = "net.brennockutilities.fieldservice"
            signingConfigs {
                create("release") {
                    storeFile = file("../signing/bcu-fieldservice-upload.jks")
                    storePassword = {V}
                    keyAlias = "fieldservice-upload"
                    keyPassword = {V2}
                }
            }
            defaultConfig {
                manifestPlaceholders["MAPS_API_KEY"] = {V3}
            }
        }
        """,
    ),
    _t(
        "fieldservice/android/gradle.properties",
        "h21_mapbox_sk",
        True,
        """
        org.gradle.jvmargs=-Xmx4g -Dfile.encoding=UTF-8
        android.useAndroidX=true
        kotlin.code.style=official
        # Mapbox Maps SDK download token (scope DOWNLOADS:READ)
        MAPBOX_DOWNLOADS_TOKEN={V}
        """,
    ),
    _t(
        "fieldservice/app/src/config/map.ts",
        "h21_mapbox_pk",
        False,
        """
        // Public (pk.) tokens are URL-restricted to the app's domains; safe to ship.
        export const MAPBOX_PUBLIC_TOKEN = "{V}";
        export const MAPBOX_STYLE = "mapbox://styles/brennock-gis/clr0networks";
        export const OUTAGE_MAP_TOKEN = "{V2}";
        """,
    ),
    _t(
        "fieldservice/ios/Config/Release.xcconfig",
        "h21_arcgis_key",
        True,
        """
        // Release configuration for BCU Field (iOS)
        PRODUCT_BUNDLE_IDENTIFIER = net.brennockutilities.field
        API_BASE_URL = https:/$()/fieldapi.brennockutilities.net
        ARCGIS_API_KEY = {V}
        """,
    ),
    _t(
        "fieldservice/ios/Config/Debug.xcconfig",
        "h21_placeholder",
        False,
        """
        #include "Secrets.xcconfig"
        // Secrets.xcconfig is gitignored; CI writes it from the keychain. Defaults below.
        PRODUCT_BUNDLE_IDENTIFIER = net.brennockutilities.field.debug
        API_BASE_URL = https:/$()/fieldapi-uat.brennockutilities.net
        ARCGIS_API_KEY = {V}
        """,
    ),
    _t(
        "fieldservice/ios/fastlane/keys/AuthKey_7QX2M4B9KC.p8",
        "h21_pkcs8",
        True,
        """
        {V}
        """,
    ),
    _t(
        "fieldservice/ios/BCUFieldTests/WorkOrderSyncTests.swift",
        "h21_fake",
        False,
        """
        import XCTest
        @testable import BCUField

        final class WorkOrderSyncTests: XCTestCase {
            func testSyncUsesBearerToken() throws {
                let client = SyncClient(baseURL: URL(string: "https://localhost:8443")!,
                                        token: "{V}")
                let request = try client.makeRequest(path: "/workorders/changed")
                XCTAssertEqual(request.value(forHTTPHeaderField: "Authorization"), "Bearer {V}")
            }
        }
        """,
    ),
    _t(
        "fieldservice/sync-api/src/main/resources/application.conf",
        "h21_pw",
        True,
        """
        ktor {
            deployment { port = 8443 }
            application { modules = [ net.brennockutilities.sync.ApplicationKt.module ] }
        }
        db {
            jdbcUrl = "jdbc:postgresql://pg-field.bcu.local:5432/workorders"
            user = "field_sync"
            password = "{V}"
        }
        maximo {
            baseUrl = "https://maximo.bcu.local/maximo/oslc"
            apiUser = "MXINTFIELD"
            apiPassword = "{V2}"
        }
        """,
    ),
    _t(
        "fieldservice/sync-api/src/main/resources/application-ci.conf",
        "h21_placeholder",
        False,
        """
        include "application.conf"
        db {
            jdbcUrl = "jdbc:postgresql://localhost:5432/workorders_test"
            user = "field_sync"
            password = ${?DB_PASSWORD}
            password = "{V}"
        }
        maximo.apiPassword = "{V2}"
        """,
    ),
    _t(
        "fieldservice/offline-cache/Rocket.toml",
        "h21_b64_32",
        True,
        """
        [default]
        address = "0.0.0.0"
        port = 8000

        [release]
        secret_key = "{V}"
        limits = { json = "4 MiB" }
        """,
    ),
    _t(
        "fieldservice/offline-cache/src/config.rs",
        "h21_fake",
        False,
        """
        use std::env;

        pub struct Config {
            pub maximo_token: String,
        }

        impl Config {
            pub fn from_env() -> Self {
                Self {
                    maximo_token: env::var("MAXIMO_TOKEN").unwrap_or_default(),
                }
            }
        }

        #[cfg(test)]
        mod tests {
            #[test]
            fn reads_token() {
                std::env::set_var("MAXIMO_TOKEN", "{V}");
                assert_eq!(super::Config::from_env().maximo_token, "{V}");
            }
        }
        """,
    ),
    _t(
        "fieldservice/offline-cache/src/maximo.rs",
        "h21_jwt",
        True,
        """
        use reqwest::Client;

        // service token for the Maximo OSLC gateway (issued by login.brennockutilities.net)
        const MAXIMO_TOKEN: &str = "{V}";

        pub async fn changed_workorders(client: &Client, since: &str) -> reqwest::Result<String> {
            client
                .get("https://maximo.bcu.local/maximo/oslc/os/bcuwo")
                .query(&[("oslc.where", format!("changedate>\\"{since}\\""))])
                .bearer_auth(MAXIMO_TOKEN)
                .send()
                .await?
                .text()
                .await
        }
        """,
    ),
]

# ==================================================================== GIS
TEMPLATES += [
    _t(
        "gis/arcgis/scripts/publish_network_services.py",
        "h21_pw",
        True,
        """
        \"\"\"Republish the water network feature services after the nightly GIS sync.\"\"\"
        from arcgis.gis import GIS

        PORTAL = "https://gis.brennockutilities.net/portal"
        gis = GIS(PORTAL, "svc_gis_publisher", "{V}", verify_cert=False)

        for item_id in ("c7a2e0d91f3b4e6aa85d2b7f0e19c4d3", "0b9f14e6a2d84c7f91e3a5b6d7c8e9f0"):
            item = gis.content.get(item_id)
            item.update(item_properties={"snippet": "Refreshed nightly"})
            print("updated", item.title)
        """,
    ),
    _t(
        "gis/arcgis/scripts/publish_network_services.v2.py",
        "h21_py_ref",
        False,
        """
        \"\"\"Republish the water network feature services (credentials from Windows Credential Manager).\"\"\"
        import keyring
        from arcgis.gis import GIS

        PORTAL = "https://gis.brennockutilities.net/portal"
        password = {V}
        gis = GIS(PORTAL, "svc_gis_publisher", password)
        """,
    ),
    _t(
        "gis/arcgis/config/webmaps.json",
        "h21_arcgis_item",
        False,
        """
        {
          "portal": "https://gis.brennockutilities.net/portal",
          "webmaps": {
            "water_network": "{V}",
            "dh_network": "{V2}",
            "outage_public": "{V3}"
          }
        }
        """,
    ),
    _t(
        "gis/notebooks/leak_hotspots.ipynb",
        "h21_arcgis_key",
        True,
        """
        {
         "cells": [
          {
           "cell_type": "markdown",
           "metadata": {},
           "source": ["# Leak hotspots by DMA (2024)\\n", "Geocodes the reported leaks and plots them."]
          },
          {
           "cell_type": "code",
           "execution_count": 3,
           "metadata": {},
           "outputs": [],
           "source": [
            "from arcgis.gis import GIS\\n",
            "from arcgis.geocoding import geocode\\n",
            "gis = GIS(api_key=\\"{V}\\")\\n",
            "leaks = pd.read_csv('leaks_2024.csv')"
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
        "gis/geoserver/data/workspaces/bcu/network/datastore.xml",
        "h21_pw",
        True,
        """
        <dataStore>
          <id>DataStoreInfoImpl-3f1a2b</id>
          <name>network</name>
          <type>PostGIS</type>
          <enabled>true</enabled>
          <connectionParameters>
            <entry key="host">pg-gis.bcu.local</entry>
            <entry key="port">5432</entry>
            <entry key="database">gis</entry>
            <entry key="schema">network</entry>
            <entry key="user">geoserver</entry>
            <entry key="passwd">{V}</entry>
            <entry key="dbtype">postgis</entry>
          </connectionParameters>
        </dataStore>
        """,
    ),
    _t(
        "gis/geoserver/data/security/usergroup/default/users.xml",
        "h21_geoserver_digest",
        False,
        """
        <?xml version="1.0" encoding="UTF-8" standalone="no"?>
        <userRegistry xmlns="http://www.geoserver.org/security/users" version="1.0">
          <users>
            <user enabled="true" name="admin" password="{V}"/>
            <user enabled="true" name="outage_wms" password="{V2}"/>
          </users>
          <groups/>
        </userRegistry>
        """,
    ),
    _t(
        "gis/qgis/projects/dh_network_edit.qgs",
        "h21_pw",
        True,
        """
        <!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
        <qgis projectname="DH network editing" version="3.34.4-Prizren">
          <projectlayers>
            <maplayer type="vector" geometry="Line">
              <id>dh_pipes_6a1f</id>
              <datasource>dbname='gis' host=pg-gis.bcu.local port=5432 user='gis_editor' password='{V}' sslmode=require key='gid' srid=27700 type=LineString table="heat"."pipes" (geom)</datasource>
              <layername>DH pipes</layername>
            </maplayer>
          </projectlayers>
        </qgis>
        """,
    ),
    _t(
        "gis/tiles/nginx/.htpasswd",
        "h21_apr1",
        False,
        """
        contractor-aquatech:{V}
        contractor-gridworks:{V2}
        internal-qa:{V3}
        """,
    ),
]

# ==================================================================== outage map
TEMPLATES += [
    _t(
        "outage-map/api/config/production.json",
        "h21_url_pw",
        True,
        """
        {
          "port": 8080,
          "redis": { "url": "rediss://:{V}@outage-redis.bcu.local:6380/0" },
          "postgres": { "url": "postgres://outage_api:{V2}@pg-outage.bcu.local:5432/outage" },
          "cache": { "incidentsTtlSeconds": 30 }
        }
        """,
    ),
    _t(
        "outage-map/api/serverless.yml",
        "h21_secret_store_ref",
        False,
        """
        service: outage-map-api
        provider:
          name: aws
          runtime: nodejs20.x
          region: eu-west-2
          environment:
            PG_PASSWORD_SECRET: "{V}"
            TWITTER_BEARER_SECRET: "{V2}"
        functions:
          incidents:
            handler: dist/incidents.handler
            events:
              - httpApi: GET /incidents
        """,
    ),
    _t(
        "outage-map/social/post_outage.py",
        "h21_x_bearer",
        True,
        """
        \"\"\"Post planned-outage notices to the @BrennockUtils account.\"\"\"
        import requests

        BEARER = "{V}"


        def post(text: str) -> dict:
            r = requests.post(
                "https://api.twitter.com/2/tweets",
                json={"text": text},
                headers={"Authorization": f"Bearer {BEARER}"},
                timeout=10,
            )
            r.raise_for_status()
            return r.json()
        """,
    ),
    _t(
        "outage-map/etl/crontab",
        "h21_url_pw",
        True,
        """
        # m h dom mon dow command   (installed on outage-etl01 as user outage)
        */2 * * * * /opt/outage/bin/sync-incidents --src "oracle://OMS_RO:{V}@oms-db.bcu.local:1521/OMSPRD" --dst "postgres://outage_etl:{V2}@pg-outage.bcu.local/outage" >> /var/log/outage/sync.log 2>&1
        15 3 * * *   /opt/outage/bin/prune --older-than 90d
        """,
    ),
    _t(
        "outage-map/web/.env.production",
        "h21_uuid",
        False,
        """
        VITE_API_BASE=https://outages.brennockutilities.net/api
        VITE_AZURE_AD_CLIENT_ID={V}
        VITE_AZURE_AD_TENANT_ID={V2}
        VITE_APPINSIGHTS_INSTRUMENTATION_KEY={V3}
        VITE_REFRESH_SECONDS=60
        """,
    ),
    _t(
        "outage-map/web/index.html",
        "h21_sri",
        False,
        """
        <!doctype html>
        <html lang="en">
          <head>
            <meta charset="utf-8" />
            <title>Power, water and heating outages | Brennock City Utilities</title>
            <link rel="stylesheet" href="https://unpkg.com/leaflet@1.9.4/dist/leaflet.css" integrity="{V}" crossorigin="" />
            <script src="https://unpkg.com/leaflet@1.9.4/dist/leaflet.js" integrity="{V2}" crossorigin=""></script>
          </head>
          <body><div id="map"></div><script type="module" src="/src/main.ts"></script></body>
        </html>
        """,
    ),
]

# ==================================================================== call centre
TEMPLATES += [
    _t(
        "callcentre/genesys/integrations/data_actions.py",
        "h21_genesys_secret",
        True,
        """
        \"\"\"Client-credentials login for the Genesys Cloud data actions that look up accounts.\"\"\"
        import PureCloudPlatformClientV2 as gc

        REGION = gc.PureCloudRegionHosts.eu_west_2
        CLIENT_ID = "5e8c2f71-3a94-4d0b-b6e1-9f27c4a80d13"
        CLIENT_SECRET = "{V}"


        def api_client() -> gc.ApiClient:
            gc.configuration.host = REGION.get_api_host()
            return gc.api_client.ApiClient().get_client_credentials_token(CLIENT_ID, CLIENT_SECRET)
        """,
    ),
    _t(
        "callcentre/genesys/terraform/main.tf",
        "h21_tf_ref",
        False,
        """
        terraform {
          required_providers {
            genesyscloud = { source = "mypurecloud/genesyscloud", version = "~> 1.40" }
          }
        }

        provider "genesyscloud" {
          oauthclient_id     = var.genesys_client_id
          oauthclient_secret = {V}
          aws_region         = "eu-west-2"
        }

        resource "genesyscloud_integration_credential" "portal_api" {
          name                 = "BCU portal API"
          credential_type_name = "basicAuth"
          fields = {
            userName = "genesys-dataaction"
            password = {V2}
          }
        }
        """,
    ),
    _t(
        "callcentre/ivr/asterisk/pjsip.conf",
        "h21_pw",
        True,
        """
        ; SIP trunk to the carrier and the after-hours overflow agents
        [carrier-auth]
        type=auth
        auth_type=userpass
        username=bcu_trunk_0114
        password={V}

        [overflow-agent-01]
        type=auth
        auth_type=userpass
        username=overflow01
        password={V2}

        [carrier]
        type=registration
        outbound_auth=carrier-auth
        server_uri=sip:sip.carrier.example.net
        """,
    ),
    _t(
        "callcentre/salesforce/.sfdx/auth/bcu-prod.json",
        "h21_sfdx_url",
        True,
        """
        {
          "alias": "bcu-prod",
          "instanceUrl": "https://brennock-utilities.my.salesforce.com",
          "sfdxAuthUrl": "{V}"
        }
        """,
    ),
    _t(
        "callcentre/dynamics/CaseSync/Program.cs",
        "h21_azure_secret",
        True,
        """
        using Microsoft.Identity.Client;
        using Microsoft.PowerPlatform.Dataverse.Client;

        var tenantId = "9b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9";
        var clientId = "2f4e6a8c-0b1d-4e3f-9a7c-5d6e8f0a1b2c";
        var secret = "{V}";

        var conn = $"AuthType=ClientSecret;Url=https://bcu-custsvc.crm11.dynamics.com;ClientId={clientId};ClientSecret={secret}";
        using var svc = new ServiceClient(conn);
        Console.WriteLine($"connected: {svc.IsReady}");
        """,
    ),
    _t(
        "callcentre/dynamics/CaseSync/appsettings.json",
        "h21_oauth_client_id",
        False,
        """
        {
          "Dataverse": {
            "Url": "https://bcu-custsvc.crm11.dynamics.com",
            "ClientId": "{V}",
            "ClientSecretName": "dataverse-casesync-secret"
          },
          "AzureAd": { "TenantId": "{V2}" }
        }
        """,
    ),
    _t(
        "callcentre/alerts/teams_notify.ps1",
        "h21_teams_webhook",
        True,
        """
        # Posts queue-length alerts to the Customer Ops Teams channel
        param([int]$Waiting, [string]$Queue)
        $hook = '{V}'
        $body = @{ text = "Queue $Queue has $Waiting callers waiting (> 15)." } | ConvertTo-Json
        Invoke-RestMethod -Uri $hook -Method Post -Body $body -ContentType 'application/json'
        """,
    ),
    _t(
        "callcentre/docs/chat-export-2024-02-storm.json",
        "h21_pw",
        True,
        """
        [
          {"ts": "2024-02-10T06:12:05Z", "user": "r.baptiste", "text": "genesys admin console is locking me out, anyone have the break-glass login?"},
          {"ts": "2024-02-10T06:13:40Z", "user": "k.lindqvist", "text": "user is bcu-breakglass@brennockutilities.net and the password is {V} - change it after the storm pls"},
          {"ts": "2024-02-10T06:14:02Z", "user": "r.baptiste", "text": "in, thanks. also the IVR emergency message recorder PIN?"},
          {"ts": "2024-02-10T06:15:19Z", "user": "k.lindqvist", "text": "recorder login ivr-emergency / {V2}"}
        ]
        """,
    ),
    _t(
        "callcentre/zendesk/macros/password_help.md",
        "h21_ui_text",
        False,
        """
        # Macro: customer cannot log in to My Account

        > {V}
        >
        > {V2}

        Send the reset link from the portal admin screen; never read out or type a password for
        the customer.
        """,
    ),
]

# ==================================================================== data platform
TEMPLATES += [
    _t(
        "data/airflow/config/airflow.cfg",
        "h21_fernet",
        True,
        """
        [core]
        dags_folder = /opt/airflow/dags
        executor = CeleryExecutor
        fernet_key = {V}
        load_examples = False

        [webserver]
        base_url = https://airflow.data.bcu.local
        """,
    ),
    _t(
        "data/airflow/dags/meter_reads_to_snowflake.py",
        "h21_py_ref",
        False,
        """
        from datetime import datetime

        from airflow import DAG
        from airflow.models import Variable
        from airflow.operators.python import PythonOperator


        def load(**_):
            import snowflake.connector

            conn = snowflake.connector.connect(
                account="bcu-analytics.uk-south.azure",
                user="AIRFLOW_LOADER",
                password={V},
                warehouse="LOAD_WH",
            )
            conn.cursor().execute("CALL raw.load_interval_reads()")


        with DAG("meter_reads_to_snowflake", start_date=datetime(2024, 1, 1), schedule="@hourly"):
            PythonOperator(task_id="load", python_callable=load)
        """,
    ),
    _t(
        "data/dbt/profiles.yml",
        "h21_pw",
        True,
        """
        bcu_analytics:
          target: prod
          outputs:
            prod:
              type: snowflake
              account: bcu-analytics.uk-south.azure
              user: DBT_PROD
              password: "{V}"
              role: TRANSFORMER
              warehouse: TRANSFORM_WH
              database: ANALYTICS
              schema: marts
              threads: 8
        """,
    ),
    _t(
        "data/dbt/ci/profiles.yml",
        "h21_placeholder",
        False,
        """
        bcu_analytics:
          target: ci
          outputs:
            ci:
              type: snowflake
              account: bcu-analytics.uk-south.azure
              user: DBT_CI
              password: "{{ env_var('DBT_CI_PASSWORD') }}"
              # old value kept for the diff reviewers: "{V}"
              role: TRANSFORMER_CI
              warehouse: CI_WH
              database: ANALYTICS_CI
              schema: "pr_{{ env_var('PR_NUMBER', 'local') }}"
        """,
    ),
    _t(
        "data/databricks/.databrickscfg",
        "h21_databricks",
        True,
        """
        [DEFAULT]
        host  = https://adb-4417093821675504.4.azuredatabricks.net
        token = {V}

        [forecasting]
        host  = https://adb-4417093821675504.4.azuredatabricks.net
        token = {V2}
        """,
    ),
    _t(
        "data/notebooks/consumption_forecast.ipynb",
        "h21_aws_nb",
        True,
        """
        {
         "cells": [
          {
           "cell_type": "code",
           "execution_count": 1,
           "metadata": {},
           "outputs": [],
           "source": [
            "import boto3, pandas as pd\\n",
            "s3 = boto3.client('s3', region_name='eu-west-2',\\n",
            "    {V}\\n",
            ")\\n",
            "obj = s3.get_object(Bucket='bcu-weather-feeds', Key='met/2024/hourly.parquet')"
           ]
          }
         ],
         "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
    ),
    _t(
        "data/spark/conf/spark-defaults.conf",
        "h21_azure_storage_key",
        True,
        """
        spark.master                      yarn
        spark.sql.shuffle.partitions      200
        spark.hadoop.fs.azure.account.key.stbcurawprod.dfs.core.windows.net   {V}
        spark.hadoop.fs.azure.account.key.stbcucuratedprod.dfs.core.windows.net   {V2}
        """,
    ),
    _t(
        "data/spark/conf/core-site.xml",
        "h21_secret_store_ref",
        False,
        """
        <configuration>
          <property>
            <name>fs.azure.account.auth.type</name>
            <value>OAuth</value>
          </property>
          <property>
            <name>fs.azure.account.oauth2.client.secret</name>
            <value>{V}</value>
          </property>
        </configuration>
        """,
    ),
    _t(
        "data/kafka/clients/analytics-consumer.properties",
        "h21_confluent_secret",
        True,
        """
        bootstrap.servers=pkc-l6wr6.europe-west2.gcp.confluent.cloud:9092
        security.protocol=SASL_SSL
        sasl.mechanism=PLAIN
        sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="TZ4QK7XWB2NDRM5P" password="{V}";
        group.id=analytics-meter-reads
        auto.offset.reset=earliest
        """,
    ),
    _t(
        "data/terraform/snowflake/users.tf",
        "h21_tf_ref",
        False,
        """
        resource "random_password" "dbt_prod" {
          length  = 32
          special = true
        }

        resource "snowflake_user" "dbt_prod" {
          name         = "DBT_PROD"
          default_role = "TRANSFORMER"
          password     = {V}
        }

        resource "snowflake_user" "airflow_loader" {
          name     = "AIRFLOW_LOADER"
          password = {V2}
        }
        """,
    ),
    _t(
        "data/r/leakage_model.R",
        "h21_pw",
        True,
        """
        library(DBI)
        library(RPostgres)

        con <- dbConnect(
          Postgres(),
          host = "mdm-pg.bcu.local",
          dbname = "mdm",
          user = "analyst_jw",
          password = "{V}"
        )

        night_flow <- dbGetQuery(con, "
          SELECT dma_id, date_trunc('day', read_ts) AS day, min(flow_ls) AS mnf
          FROM telemetry.dma_flow GROUP BY 1, 2")
        dbDisconnect(con)
        """,
    ),
    _t(
        "data/r/leakage_model_v2.R",
        "h21_placeholder",
        False,
        """
        library(DBI)
        # credentials from ~/.Renviron (MDM_USER / MDM_PASSWORD), never in the script
        con <- dbConnect(
          RPostgres::Postgres(),
          host = "mdm-pg.bcu.local",
          dbname = "mdm",
          user = Sys.getenv("MDM_USER"),
          password = Sys.getenv("MDM_PASSWORD", unset = "{V}")
        )
        """,
    ),
    _t(
        "data/ml/forecast/push_model.py",
        "h21_hf",
        True,
        """
        from huggingface_hub import HfApi

        api = HfApi(token="{V}")
        api.upload_folder(
            folder_path="artifacts/dh-load-forecaster",
            repo_id="brennock-utilities/dh-load-forecaster",
            repo_type="model",
            private=True,
        )
        """,
    ),
    _t(
        "data/powerbi/runbook-gateway.md",
        "h21_pw",
        True,
        """
        # Power BI on-premises gateway (pbigw01)

        1. RDP to pbigw01 as your admin account.
        2. The gateway recovery key is `{V}`; you need it to migrate or restore the gateway.
        3. The data source credentials for *MDM Postgres* use `pbi_reader`; its password is
           {V2} (rotate with the DBA team, then update the data source in the Power BI service).
        4. Check *Diagnostics > Network ports test* passes.
        """,
    ),
]

# ==================================================================== infrastructure and CI
TEMPLATES += [
    _t(
        ".github/workflows/portal-deploy.yml",
        "h21_ci_ref",
        False,
        """
        name: portal-deploy
        on:
          push:
            branches: [main]
        jobs:
          deploy:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - uses: docker/login-action@v3
                with:
                  username: bcudeploy
                  password: {V}
              - run: npm ci && npm run build
                env:
                  NODE_AUTH_TOKEN: {V2}
        """,
    ),
    _t(
        ".github/workflows/fieldservice-release.yml",
        "h21_docker_pat",
        True,
        """
        name: fieldservice-release
        on: workflow_dispatch
        jobs:
          image:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              # temporary until the org secret is restored (FS-812)
              - run: echo "{V}" | docker login -u bcudeploy --password-stdin
              - run: docker build -t bcudeploy/field-sync:${{ github.sha }} fieldservice/sync-api
              - run: docker push bcudeploy/field-sync:${{ github.sha }}
        """,
    ),
    _t(
        ".gitlab-ci.yml",
        "h21_gitlab",
        True,
        """
        stages: [build, test]

        variables:
          GIT_SUBMODULE_STRATEGY: none

        before_script:
          # shared GIS symbology lives in another group; project token with read_repository
          - git clone https://oauth2:{V}@gitlab.bcu.local/gis/symbology.git vendor/symbology

        build:
          stage: build
          image: python:3.12-slim
          script:
            - pip install -r gis/requirements.txt
            - python gis/arcgis/scripts/validate_layers.py
        """,
    ),
    _t(
        "ot/Jenkinsfile",
        "h21_placeholder",
        False,
        """
        pipeline {
          agent { label 'ot-build' }
          environment {
            NEXUS = credentials('nexus-ot-deployer')
          }
          stages {
            stage('Package') {
              steps {
                sh 'mvn -B -s .mvn/settings.xml package'
              }
            }
            stage('Publish') {
              steps {
                // old inline password '{V}' removed, see OTSEC-41
                sh 'mvn -B -s .mvn/settings.xml deploy -Dnexus.user=$NEXUS_USR -Dnexus.password=$NEXUS_PSW'
              }
            }
          }
        }
        """,
    ),
    _t(
        "ot/jenkins/credentials.xml",
        "h21_jenkins_enc",
        False,
        """
        <?xml version='1.1' encoding='UTF-8'?>
        <com.cloudbees.plugins.credentials.SystemCredentialsProvider plugin="credentials@1337.v60b_d7b_c7b_c9f">
          <domainCredentialsMap class="hudson.util.CopyOnWriteMap$Hash">
            <entry>
              <com.cloudbees.plugins.credentials.domains.Domain><specifications/></com.cloudbees.plugins.credentials.domains.Domain>
              <java.util.concurrent.CopyOnWriteArrayList>
                <com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
                  <id>nexus-ot-deployer</id>
                  <username>ot-deployer</username>
                  <password>{V}</password>
                </com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
                <org.jenkinsci.plugins.plaincredentials.impl.StringCredentialsImpl>
                  <id>sonar-token</id>
                  <secret>{V2}</secret>
                </org.jenkinsci.plugins.plaincredentials.impl.StringCredentialsImpl>
              </java.util.concurrent.CopyOnWriteArrayList>
            </entry>
          </domainCredentialsMap>
        </com.cloudbees.plugins.credentials.SystemCredentialsProvider>
        """,
    ),
    _t(
        "azure-pipelines/billing-portal.yml",
        "h21_azure_secret",
        True,
        """
        trigger: [main]
        pool: { vmImage: ubuntu-latest }
        variables:
          ARM_CLIENT_ID: 7c1e9a24-5b3f-4d8e-a2c6-0f1b9d3e5a7c
          ARM_TENANT_ID: 9b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9
          ARM_CLIENT_SECRET: {V}
        steps:
          - script: terraform -chdir=infra/billing init && terraform -chdir=infra/billing apply -auto-approve
            displayName: terraform apply
        """,
    ),
    _t(
        "billing/portal/Dockerfile",
        "h21_npm",
        True,
        """
        FROM node:20-alpine AS build
        WORKDIR /app
        # private @bcu packages on the npm registry
        RUN echo "//registry.npmjs.org/:_authToken={V}" > .npmrc
        COPY package*.json ./
        RUN npm ci && rm -f .npmrc
        COPY . .
        RUN npm run build

        FROM node:20-alpine
        WORKDIR /app
        COPY --from=build /app/dist ./dist
        CMD ["node", "dist/server.js"]
        """,
    ),
    _t(
        "outage-map/api/Dockerfile",
        "h21_placeholder",
        False,
        """
        # syntax=docker/dockerfile:1.7
        FROM node:20-alpine AS build
        WORKDIR /app
        COPY package*.json .npmrc ./
        # .npmrc holds //registry.npmjs.org/:_authToken=${NPM_TOKEN}; the secret is mounted at build time
        RUN --mount=type=secret,id=npm_token NPM_TOKEN=$(cat /run/secrets/npm_token) npm ci
        ARG SENTRY_AUTH_TOKEN={V}
        COPY . .
        RUN npm run build
        """,
    ),
    _t(
        "ot/historian/dev/docker-compose.yml",
        "h21_weak_pw",
        True,
        """
        services:
          influxdb:
            image: influxdb:2.7
            environment:
              DOCKER_INFLUXDB_INIT_MODE: setup
              DOCKER_INFLUXDB_INIT_USERNAME: admin
              DOCKER_INFLUXDB_INIT_PASSWORD: {V}
              DOCKER_INFLUXDB_INIT_ORG: bcu-ot
              DOCKER_INFLUXDB_INIT_BUCKET: scada_raw
            ports: ["8086:8086"]
          grafana:
            image: grafana/grafana:11.1.0
            environment:
              GF_SECURITY_ADMIN_PASSWORD: {V2}
            ports: ["3000:3000"]
        """,
    ),
    _t(
        "ot/historian/dev/docker-compose.ci.yml",
        "h21_placeholder",
        False,
        """
        services:
          influxdb:
            env_file: .env.ci
            environment:
              DOCKER_INFLUXDB_INIT_PASSWORD: ${INFLUX_ADMIN_PASSWORD:-{V}}
          grafana:
            environment:
              GF_SECURITY_ADMIN_PASSWORD__FILE: /run/secrets/grafana_admin
            secrets: [grafana_admin]
        secrets:
          grafana_admin:
            file: ./secrets/grafana_admin.txt
        """,
    ),
    _t(
        "infra/aws/outage-map/providers.tf",
        "h21_aws_tf",
        True,
        """
        provider "aws" {
          region = "eu-west-2"
          {IV}
          default_tags {
            tags = { service = "outage-map", owner = "digital" }
          }
        }
        """,
    ),
    _t(
        "infra/aws/outage-map/backend.tf",
        "h21_secret_store_ref",
        False,
        """
        terraform {
          backend "s3" {
            bucket         = "bcu-tfstate-prod"
            key            = "outage-map/terraform.tfstate"
            region         = "eu-west-2"
            dynamodb_table = "bcu-tf-locks"
            encrypt        = true
          }
        }

        data "aws_secretsmanager_secret" "pg" {
          arn = "{V}"
        }
        """,
    ),
    _t(
        "infra/ansible/group_vars/scada_dmz/vault.yml",
        "h21_ansible_vault",
        False,
        """
        {V}
        """,
    ),
    _t(
        "infra/ansible/group_vars/rtu_routers.yml",
        "h21_weak_pw",
        True,
        """
        # RUT955 fleet (pump stations, DH substations)
        ansible_user: root
        ansible_password: "{V}"
        router_ntp: ntp.ot.bcu.local
        router_syslog: 10.40.0.30
        router_web_admin_password: "{V2}"
        """,
    ),
    _t(
        "infra/ansible/group_vars/historian.yml",
        "h21_sops",
        False,
        """
        influx_admin_user: admin
        influx_admin_password: {V}
        grafana_admin_password: {V2}
        sops:
          azure_kv:
            - vault_url: https://kv-bcu-ot.vault.azure.net
              name: sops-ot
              version: 3c9d2e0f7a1b4c5d8e6f9a0b1c2d3e4f
          lastmodified: "2024-09-30T08:11:27Z"
          version: 3.8.1
        """,
    ),
    _t(
        "ops/bootstrap/aws/credentials",
        "h21_aws_ini",
        True,
        """
        [bcu-outage-prod]
        {V}
        region = eu-west-2

        [bcu-datalake]
        {V2}
        """,
    ),
    _t(
        "billing/portal/.npmrc",
        "h21_npm",
        True,
        """
        @bcu:registry=https://registry.npmjs.org/
        //registry.npmjs.org/:_authToken={V}
        save-exact=true
        """,
    ),
    _t(
        "fieldservice/sync-api/nuget.config",
        "h21_pw",
        True,
        """
        <?xml version="1.0" encoding="utf-8"?>
        <configuration>
          <packageSources>
            <add key="bcu-nexus" value="https://nexus.bcu.local/repository/nuget-group/" />
          </packageSources>
          <packageSourceCredentials>
            <bcu-nexus>
              <add key="Username" value="nuget-reader" />
              <add key="ClearTextPassword" value="{V}" />
            </bcu-nexus>
          </packageSourceCredentials>
        </configuration>
        """,
    ),
    _t(
        "ot/.mvn/settings.xml",
        "h21_mvn_enc",
        False,
        """
        <settings>
          <servers>
            <server>
              <id>bcu-nexus-releases</id>
              <username>ot-deployer</username>
              <password>{V}</password>
            </server>
            <server>
              <id>bcu-nexus-snapshots</id>
              <username>ot-deployer</username>
              <password>{V2}</password>
            </server>
          </servers>
        </settings>
        """,
    ),
    _t(
        "gis/.git-credentials",
        "h21_github",
        True,
        """
        https://bcu-gis-bot:{V}@github.com
        """,
    ),
    _t(
        "ops/scripts/rotate-hes-password.sh",
        "h21_sh_ref",
        False,
        """
        #!/usr/bin/env bash
        # Rotate the head-end integration password and restart the adapter
        set -euo pipefail
        NEW_PW=$(openssl rand -base64 24)
        OLD_PW={V}
        curl -sf -u "BCU_MDM_INT:$OLD_PW" -X POST https://hes01.ami.bcu.local/admin/users/BCU_MDM_INT/password \\
          --data-urlencode "new=$NEW_PW"
        vault kv put secret/ami/hes password="$NEW_PW"
        kubectl -n ami rollout restart deploy/hes-adapter
        """,
    ),
    _t(
        "ops/monitoring/datadog/datadog.yaml",
        "h21_datadog",
        True,
        """
        site: datadoghq.eu
        api_key: {V}
        hostname: outage-etl01
        tags:
          - env:prod
          - team:digital
        logs_enabled: true
        """,
    ),
    _t(
        "ops/monitoring/newrelic/newrelic.yml",
        "h21_newrelic",
        True,
        """
        common: &default_settings
          license_key: '{V}'
          app_name: BCU Customer Portal
          distributed_tracing:
            enabled: true
        production:
          <<: *default_settings
        """,
    ),
    _t(
        "ops/alerting/slack_notify.py",
        "h21_slack_webhook",
        True,
        """
        import json
        import urllib.request

        WEBHOOK = "{V}"


        def notify(text: str) -> None:
            req = urllib.request.Request(
                WEBHOOK, data=json.dumps({"text": text}).encode(), headers={"Content-Type": "application/json"}
            )
            urllib.request.urlopen(req, timeout=5)
        """,
    ),
    _t(
        "ops/alerting/README.md",
        "h21_doc_example",
        False,
        """
        # Alerting helpers

        Configure the webhook in `ALERT_WEBHOOK_URL`. The Slack docs use this example, which
        does not post anywhere:

            ALERT_WEBHOOK_URL={V}

        For local tests point it at `http://localhost:9999/hook` (see `tests/fake_slack.py`).
        """,
    ),
    _t(
        "ops/chatops/bot/config.exs",
        "h21_slack_bot",
        True,
        """
        import Config

        config :outage_bot, OutageBot.Slack,
          bot_token: "{V}",
          channel: "#outage-control",
          poll_interval_ms: 30_000
        """,
    ),
    _t(
        "ops/vault/README.md",
        "h21_hvs",
        True,
        """
        # Vault quick start (ops laptops)

        ```bash
        export VAULT_ADDR=https://vault.bcu.local:8200
        export VAULT_TOKEN={V}   # ops-team periodic token, renew weekly
        vault kv get secret/ot/historian
        ```
        """,
    ),
    _t(
        "ops/okta/sync_groups.go",
        "h21_okta",
        True,
        """
        package main

        import (
        	"context"
        	"log"

        	"github.com/okta/okta-sdk-golang/v2/okta"
        )

        func main() {
        	ctx, client, err := okta.NewClient(context.Background(),
        		okta.WithOrgUrl("https://brennockutilities.okta.com"),
        		okta.WithToken("{V}"),
        	)
        	if err != nil {
        		log.Fatal(err)
        	}
        	groups, _, _ := client.Group.ListGroups(ctx, nil)
        	log.Printf("%d groups", len(groups))
        }
        """,
    ),
]

# ==================================================================== vendors, contractors, prose
TEMPLATES += [
    _t(
        "vendors/gridworks/handover/2024-06-handover.md",
        "h21_pw",
        True,
        """
        # Gridworks Ltd: handover of the Kilnfield substation automation (June 2024)

        Prepared by Gridworks for BCU OT Engineering. Items still owned by Gridworks until the
        warranty ends are marked (GW).

        ## Accounts we created

        | system | account | password | notes |
        | --- | --- | --- | --- |
        | RTU web UI (all 4 RTUs) | `gwadmin` | `{V}` | (GW) please rotate at takeover |
        | Protection relay config tool | `engineer` | `{V2}` | shared with the BCU protection team |
        | Substation HMI (Windows) | `.\\\\hmi-local` | `{V3}` | local admin, no domain join |

        ## Open items

        - The station gateway still uses the factory certificate; replace before the pen test.
        """,
    ),
    _t(
        "vendors/gridworks/vpn/bcu-ot-remote.ovpn",
        "h21_rsa_pem",
        True,
        """
        client
        dev tun
        proto udp
        remote vpn-ot.brennockutilities.net 1194
        resolv-retry infinite
        nobind
        remote-cert-tls server
        cipher AES-256-GCM
        ca ca.crt
        cert gridworks-eng01.crt
        <key>
        {V}
        </key>
        verb 3
        """,
    ),
    _t(
        "vendors/gridworks/vpn/ca.crt",
        "h21_cert",
        False,
        """
        {V}
        """,
    ),
    _t(
        "vendors/aquatech/ssh/id_ed25519",
        "h21_openssh",
        True,
        """
        {V}
        """,
    ),
    _t(
        "vendors/aquatech/ssh/authorized_keys",
        "h21_ssh_pub",
        False,
        """
        # jump01: contractor keys, reviewed quarterly (last: 2024-10-01)
        {V}
        {V2}
        {V3}
        """,
    ),
    _t(
        "data/gcp/weather-ingest-sa.json",
        "h21_gcp_private_key",
        True,
        """
        {
          "type": "service_account",
          "project_id": "bcu-weather-ingest",
          "private_key_id": "3b7e1f9a0c2d4e6f8a1b3c5d7e9f0a2b4c6d8e0f",
          "private_key": "{V}",
          "client_email": "weather-ingest@bcu-weather-ingest.iam.gserviceaccount.com",
          "client_id": "104728391057264813095",
          "auth_uri": "https://accounts.google.com/o/oauth2/auth",
          "token_uri": "https://oauth2.googleapis.com/token"
        }
        """,
    ),
    _t(
        "ops/tickets/INC-40877.txt",
        "h21_weak_pw",
        True,
        """
        INC-40877  P2  Customer portal: direct debit setup failing for new accounts
        Opened: 2024-09-03 08:41  Assignee: Billing Apps

        08:52 s.nakamura: the bureau changed our SFTP password on their side after the audit.
        09:10 s.nakamura: got the new one from their service desk: {V}
              updated it on billbatch01 in /srv/bacs/.creds, reran the 08:30 batch, OK now.
        09:15 p.adeyemi: thanks. the UAT bureau login is still {V2} if anyone needs to test.
        Resolved: 2024-09-03 09:20
        """,
    ),
    _t(
        "ops/tickets/CHG-3391.md",
        "h21_masked",
        False,
        """
        # CHG-3391: switch head-end integration to WS-Security PasswordDigest

        - Requested by: AMI platform team
        - Window: 2024-12-01 22:00-23:00

        ## Steps

        1. Set the new integration password on hes01 (value in Vault, shown here as `{V}`).
        2. Update `secret/ami/hes` and restart `hes-adapter`.
        3. Confirm the trace no longer shows `PasswordText`; header logged as `{V2}`.
        """,
    ),
    _t(
        "docs/site/ot-remote-access.html",
        "h21_host_fpr",
        False,
        """
        <!DOCTYPE html>
        <html lang="en">
        <head><meta charset="utf-8"><title>OT remote access for contractors</title></head>
        <body>
          <h1>Connecting to the OT jump host</h1>
          <p>Log in with your own contractor account and hardware token; never share accounts.</p>
          <p>On first connection check the host key fingerprint matches:</p>
          <pre>
        jump01.ot.brennockutilities.net ED25519 {V}
        jump01.ot.brennockutilities.net RSA     {V2}
          </pre>
          <p>If it does not match, disconnect and call the OT service desk.</p>
        </body>
        </html>
        """,
    ),
    _t(
        "outage-map/api/lambda/template.yaml",
        "h21_kms_blob",
        False,
        """
        AWSTemplateFormatVersion: "2010-09-09"
        Transform: AWS::Serverless-2016-10-31
        Resources:
          IncidentsFunction:
            Type: AWS::Serverless::Function
            Properties:
              Handler: dist/incidents.handler
              Runtime: nodejs20.x
              KmsKeyArn: arn:aws:kms:eu-west-2:418273650912:key/6f1d2c3b-4a5e-4f60-8a71-92b3c4d5e6f7
              Environment:
                Variables:
                  # encrypted with the key above (aws kms encrypt); decrypted at cold start
                  PG_PASSWORD_ENCRYPTED: {V}
                  TWITTER_BEARER_ENCRYPTED: {V2}
        """,
    ),
    _t(
        "infra/cloud-init/historian-node.yaml",
        "h21_sha512crypt",
        False,
        """
        #cloud-config
        hostname: hist-node-03
        users:
          - name: otadmin
            groups: [sudo]
            lock_passwd: false
            passwd: {V}
            shell: /bin/bash
          - name: breakglass
            passwd: {V2}
        ssh_pwauth: false
        """,
    ),
    _t(
        "billing/portal/logs/portal-api-2024-11-02.log",
        "h21_jwt",
        True,
        """
        2024-11-02T14:03:11.551Z debug http  --> POST /api/v1/outages/subscriptions
        2024-11-02T14:03:11.552Z debug http  headers {"authorization":"Bearer {V}","x-request-id":"8f3c2e71-0b4d-4a9e-b6f1-2d7c9e0a3b5f"}
        2024-11-02T14:03:11.601Z info  http  <-- 201 49ms
        """,
    ),
    _t(
        "billing/portal/logs/portal-api-2024-11-03.log",
        "h21_trace_id",
        False,
        """
        2024-11-03T07:15:40.118Z info  http  --> GET /api/v1/accounts/4102288713/bills traceparent=00-{V}-b7ad6b7169203331-01
        2024-11-03T07:15:40.119Z debug http  headers {"authorization":"Bearer [FILTERED]","x-correlation-id":"{V2}"}
        2024-11-03T07:15:40.203Z info  http  <-- 200 85ms
        """,
    ),
    _t(
        "ops/keys/release-signing.pub.pem",
        "h21_public_pem",
        False,
        """
        {V}
        """,
    ),
    _t(
        "gis/package-lock.json",
        "h21_sri",
        False,
        """
        {
          "name": "bcu-gis-tools",
          "version": "2.3.0",
          "lockfileVersion": 3,
          "packages": {
            "node_modules/@esri/arcgis-rest-request": {
              "version": "4.2.3",
              "resolved": "https://registry.npmjs.org/@esri/arcgis-rest-request/-/arcgis-rest-request-4.2.3.tgz",
              "integrity": "{V}"
            },
            "node_modules/proj4": {
              "version": "2.11.0",
              "resolved": "https://registry.npmjs.org/proj4/-/proj4-2.11.0.tgz",
              "integrity": "{V2}"
            }
          }
        }
        """,
    ),
    _t(
        "ops/runbooks/dh-substation-restart.md",
        "h21_git_sha",
        False,
        """
        # District heating substation: controller restart

        Applies to the Kilnfield and Ashgrove DH substations (controller firmware built from
        commit `{V}` of `ot/dh-controller`; the previous known-good build is `{V2}`).

        1. Put the substation into local manual from the HMI (operator login: your own AD account).
        2. Hold the controller reset for 10 s; wait for the green RUN LED.
        3. Confirm supply temperature returns to setpoint within 20 minutes on the SCADA trend.
        """,
    ),
]
