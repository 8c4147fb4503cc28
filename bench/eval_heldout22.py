"""Blind part ``heldout22``: a national chain of veterinary clinics with its own pet-insurance
arm, Kindred Paws Veterinary Group (KPVG: about 140 clinics, the KindredCover insurance
company, the Kindred Paws online shop), with its vendors and outside contractors. Files are the
practice-management system (PMS: .NET services, SQL Server schemas and logins, a legacy Delphi
and VB.NET front desk, PowerShell clinic scripts), the appointment booking web and mobile apps
(Next.js/TypeScript, React Native, Kotlin and Swift, Firebase and push config), lab-results
integrations (IDEXX/Antech-style HL7 and REST pollers in Python, Go and Java), imaging archives
(Orthanc/DICOM config, DCMTK scripts, PACS router Lua), claims-processing pipelines (Kotlin and
Python workers, Kafka, Airflow DAGs, OCR of vet invoices), payment and payout integrations
(Stripe, Adyen, GoCardless, PayPal, BACS payout files), the pet-food e-commerce shop (Shopify
apps, PHP/Laravel, Magento leftovers, Klaviyo), the loyalty programme (Ruby on Rails, Redis),
call-centre and marketing tooling (Twilio, Zendesk, HubSpot, Mailchimp, Slack and Teams bots),
the data warehouse (Snowflake, dbt, Databricks notebooks, SQL), clinic IT (Wi-Fi controllers,
printers and scanners, Synology NAS backups, SNMP monitoring, PuTTY keys, Ansible), and outside
contractors' repositories, plus CI (GitHub Actions, GitLab CI, Azure Pipelines, Bitbucket),
Dockerfiles, Compose, Kubernetes and Helm, Terraform, runbooks, handover notes, tickets, chat
exports, logs and notebooks. Written blind (without seeing the scanner, its rules or other
parts' templates).

Look-alikes sit in the same kinds of files under the same key names: password hashes (bcrypt,
argon2, Django PBKDF2, PostgreSQL SCRAM and md5, sha512-crypt), values encrypted at rest (SOPS,
Ansible Vault, sealed secrets, Jasypt, KMS blobs, encrypted PEM keys), references to environment
variables and secret stores in every language and tool (Helm, Ansible, dbt, Octopus, CI),
placeholders and redactions, public material (certificates, public and SSH keys, JWKS moduli,
Stripe publishable keys, reCAPTCHA site keys, Sentry DSNs, OAuth client ids), identifiers shaped
like secrets (pet microchip numbers, DICOM UIDs, policy and claim numbers, IBANs, image digests,
lockfile checksums, UUIDs), UI text about passwords (English and Welsh),
documented example credentials, credentials on documentation hosts and test values that say
they are fake.
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
DIGITS = string.digits
ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
UPNUM = string.ascii_uppercase + string.digits
LOWNUM = string.ascii_lowercase + string.digits
B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
B64 = ALNUM + "+/"
PW_SYMBOLS = "!#%^*-_=+.@$"
CRYPT64 = "./" + ALNUM


class Heldout22Values(evalset.Values):
    """Value generators of the heldout22 part; every name starts with ``h22_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "whisker",
            "spaniel",
            "kibble",
            "beagle",
            "collie",
            "tabby",
            "hamster",
            "budgie",
            "furball",
            "terrier",
            "lurcher",
            "moggy",
            "dachshund",
            "ferret",
        ]
        self.users = [
            "pms_app",
            "booking",
            "claims",
            "labsync",
            "pacs",
            "payouts",
            "shop",
            "loyalty",
            "dwh_etl",
            "callcentre",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def h22_util_b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        text = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
        return text if pad else text.rstrip("=")

    def h22_util_crc_token(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def h22_util_armor(self, label: str, der: bytes, width: int = 64) -> str:
        body = base64.b64encode(der).decode()
        rows = [body[i : i + width] for i in range(0, len(body), width)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def h22_util_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # ------------------------------------------------------------------ positives: passwords
    def h22_pw(self) -> str:
        shape = self.rng.randrange(6)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*.$"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(13, 21), ALNUM + PW_SYMBOLS
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}.{other.capitalize()}.{self.s(2, DIGITS)}"
        if shape == 3:
            return "Kp" + self.s(12, ALNUM) + self.pick(list("!#%$"))
        if shape == 4:
            return self.s(self.rng.randrange(16, 25), ALNUM)
        leet = word.replace("a", "@").replace("o", "0").replace("e", "3").replace("i", "1")
        return leet[0].upper() + leet[1:] + "#" + self.s(4, DIGITS)

    def h22_weak_pw(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(
                [
                    "Welcome1!",
                    "P@ssw0rd1",
                    "Kindred123",
                    "Vetclinic1",
                    "Paws2024!",
                    "frontdesk1",
                    "Reception123",
                    "Qwerty123!",
                    "Surgery2023",
                ]
            )
        if shape == 1:
            return "Kindred" + str(self.rng.randrange(2016, 2026)) + self.pick(["", "!", "#", "$"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2024", "!", "99"])
        return (
            self.pick(["Summer", "Winter", "Spring", "Autumn"])
            + str(self.rng.randrange(2019, 2026))
            + self.pick(["", "!"])
        )

    def h22_url_pw(self) -> str:
        if self.rng.randrange(2):
            return (
                self.pick(self.words).capitalize() + self.s(4, DIGITS) + self.pick(["", "x", "Q"])
            )
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(13, 22), ALNUM + "-_.")

    def h22_wifi_psk(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return "-".join(self.pick(self.words) for _ in range(3)) + "-" + self.s(2, DIGITS)
        if shape == 1:
            return "KindredStaff" + self.s(4, DIGITS) + self.pick(["!", "#", ""])
        return self.s(20, ALNUM)

    def h22_snmp(self) -> str:
        return self.pick(["kp-nms-", "kpvg_ro_", "clinicmon"]) + self.s(10, ALNUM)

    def h22_basic_b64(self) -> str:
        user = self.pick([*self.users, "svc-ci", "kp-deploy", "idexx-push"])
        return base64.b64encode(f"{user}:{self.h22_pw()}".encode()).decode()

    def h22_pw_b64(self) -> str:
        return base64.b64encode(self.h22_pw().encode()).decode()

    # ------------------------------------------------------------------ positives: tokens
    def h22_api_key(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.s(32, HEX)
        if shape == 1:
            return self.s(40, ALNUM)
        if shape == 2:
            return self.h22_util_uuid()
        return self.s(48, URLSAFE)

    def h22_github(self) -> str:
        return self.h22_util_crc_token(self.pick(["ghp", "ghp", "gho", "ghs"]))

    def h22_gitlab(self) -> str:
        return self.pick(["glpat-", "glpat-", "gldt-", "glrt-"]) + self.s(20, URLSAFE)

    def h22_npm(self) -> str:
        return self.h22_util_crc_token("npm")

    def h22_slack(self) -> str:
        kind = self.pick(["xoxb", "xoxb", "xoxp"])
        return f"{kind}-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-{self.s(24, ALNUM)}"

    def h22_slack_hook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}/B{self.s(10, UPNUM)}/"
            f"{self.s(24, ALNUM)}"
        )

    def h22_teams_hook(self) -> str:
        a, b, c = self.h22_util_uuid(), self.h22_util_uuid(), self.h22_util_uuid()
        return (
            f"https://kindredpaws.webhook.office.com/webhookb2/{a}@{b}/IncomingWebhook/"
            f"{self.s(32, HEX)}/{c}/V2{self.s(43, URLSAFE)}"
        )

    def h22_discord_hook(self) -> str:
        return (
            f"https://discord.com/api/webhooks/{self.rng.randrange(10**17, 10**19)}/"
            f"{self.s(68, URLSAFE)}"
        )

    def h22_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def h22_twilio(self) -> str:
        return self.s(32, HEX)

    def h22_google_api(self) -> str:
        return "AIza" + self.s(35, URLSAFE)

    def h22_stripe(self) -> str:
        prefix = self.pick(["sk_live_", "sk_live_", "rk_live_"])
        if self.rng.randrange(2):
            return prefix + "51" + self.s(97, ALNUM)
        return prefix + self.s(24, ALNUM)

    def h22_stripe_whsec(self) -> str:
        return "whsec_" + self.s(32, ALNUM)

    def h22_adyen(self) -> str:
        return (
            "AQE"
            + self.s(1, "hjkyp")
            + self.s(96, B64)
            + "==-"
            + self.h22_util_b64(32)
            + "-"
            + self.s(16, ALNUM + ";%=<>}{(")
        )

    def h22_gocardless(self) -> str:
        return "live_" + self.s(40, URLSAFE)

    def h22_paypal(self) -> str:
        return "E" + self.s(79, URLSAFE)

    def h22_shopify(self) -> str:
        return self.pick(["shpat_", "shpat_", "shpca_", "shppa_"]) + self.s(32, HEX)

    def h22_klaviyo(self) -> str:
        return "pk_" + self.s(34, HEX)

    def h22_hubspot(self) -> str:
        return "pat-" + self.pick(["eu1", "na1"]) + "-" + self.h22_util_uuid()

    def h22_mailchimp(self) -> str:
        return self.s(32, HEX) + "-us" + str(self.rng.randrange(1, 22))

    def h22_openai(self) -> str:
        return f"sk-proj-{self.s(58, URLSAFE)}T3BlbkFJ{self.s(58, URLSAFE)}"

    def h22_vault(self) -> str:
        if self.rng.randrange(2):
            return "hvs.CAESI" + self.s(86, URLSAFE)
        return "hvs." + self.s(24, ALNUM)

    def h22_docker(self) -> str:
        return "dckr_pat_" + self.s(27, URLSAFE)

    def h22_newrelic(self) -> str:
        if self.rng.randrange(2):
            return "NRAK-" + self.s(27, UPNUM)
        return self.s(36, HEX) + "NRAL"

    def h22_datadog(self) -> str:
        return self.s(32, HEX)

    def h22_fcm(self) -> str:
        return f"AAAA{self.s(7, URLSAFE)}:APA91b{self.s(134, URLSAFE)}"

    def h22_okta(self) -> str:
        return "00" + self.s(40, URLSAFE)

    def h22_atlassian(self) -> str:
        return "ATATT3xFfGF0" + self.s(171, URLSAFE) + "=" + self.s(8, HEX.upper())

    def h22_bitbucket(self) -> str:
        return "ATBB" + self.s(28, ALNUM) + self.s(8, HEX.upper())

    def h22_azure_key(self) -> str:
        return self.h22_util_b64(64)

    def h22_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            return (
                base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode())
                .decode()
                .rstrip("=")
            )

        head = part({"alg": self.pick(["HS256", "RS256"]), "typ": "JWT"})
        body = part(
            {
                "iss": self.pick(["kpvg-auth", "https://login.kindredpaws.co.uk", "claims-api"]),
                "sub": self.pick(self.users),
                "scope": self.pick(["claims:write", "pms:read lab:write", "booking:admin"]),
                "iat": 1700000000 + self.rng.randrange(10**7),
                "exp": 1900000000 + self.rng.randrange(10**7),
            }
        )
        return f"{head}.{body}.{self.h22_util_b64(32, urlsafe=True, pad=False)}"

    def h22_aws_ini(self) -> str:
        key_id = "AKIA" + self.s(16, string.ascii_uppercase + "234567")
        secret = self.s(40, B64)
        return f"aws_access_key_id = {key_id}\naws_secret_access_key = {secret}"

    def h22_aws_secret(self) -> str:
        return self.s(40, B64)

    def h22_ses_smtp(self) -> str:
        return "B" + self.s(43, B64)

    def h22_django(self) -> str:
        return self.s(50, string.ascii_lowercase + DIGITS + "!@#%^&*(-_=+)")

    def h22_laravel(self) -> str:
        return "base64:" + self.h22_util_b64(32)

    def h22_hex_secret(self) -> str:
        return self.s(self.pick([64, 64, 128]), HEX)

    def h22_b64_secret(self) -> str:
        return self.h22_util_b64(self.pick([32, 48, 64]))

    def h22_pypi(self) -> str:
        return "pypi-AgEIcHlwaS5vcmc" + self.s(70, URLSAFE)

    def h22_age(self) -> str:
        return "AGE-SECRET-KEY-1" + self.s(58, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L")

    def h22_tfc(self) -> str:
        return f"{self.s(14, ALNUM)}.atlasv1.{self.s(67, ALNUM)}"

    def h22_databricks(self) -> str:
        return "dapi" + self.s(32, HEX) + self.pick(["", "-2", "-3"])

    def h22_sentry_org(self) -> str:
        payload = json.dumps(
            {
                "iat": 1710000000 + self.rng.randrange(10**7),
                "url": "https://sentry.io",
                "region_url": "https://de.sentry.io",
                "org": "kindred-paws",
            },
            separators=(",", ":"),
        )
        body = base64.b64encode(payload.encode()).decode().rstrip("=")
        return f"sntrys_{body}_{self.s(43, B64)}"

    def h22_mapbox_sk(self) -> str:
        head = (
            base64.urlsafe_b64encode(
                json.dumps(
                    {"u": "kindredpaws", "a": self.s(25, LOWNUM)}, separators=(",", ":")
                ).encode()
            )
            .decode()
            .rstrip("=")
        )
        return f"sk.{head}.{self.s(22, URLSAFE)}"

    def h22_algolia(self) -> str:
        return self.s(32, HEX)

    def h22_zendesk(self) -> str:
        return self.s(40, ALNUM)

    # ------------------------------------------------------------------ positives: keys
    def h22_rsa(self) -> str:
        der = b"\x30\x82\x04\xa4\x02\x01\x00\x02\x82\x01\x01\x00" + self.rng.randbytes(1180)
        return self.h22_util_armor("RSA PRIVATE KEY", der)

    def h22_pkcs8(self) -> str:
        der = (
            b"\x30\x82\x04\xbe\x02\x01\x00\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01"
            b"\x05\x00\x04\x82\x04\xa8" + self.rng.randbytes(1192)
        )
        return self.h22_util_armor("PRIVATE KEY", der)

    def h22_ec(self) -> str:
        der = (
            b"\x30\x77\x02\x01\x01\x04\x20"
            + self.rng.randbytes(32)
            + b"\xa0\x0a\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07\xa1\x44\x03\x42\x00\x04"
            + self.rng.randbytes(64)
        )
        return self.h22_util_armor("EC PRIVATE KEY", der)

    def h22_p8(self) -> str:
        der = (
            b"\x30\x81\x93\x02\x01\x00\x30\x13\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x08\x2a"
            b"\x86\x48\xce\x3d\x03\x01\x07\x04\x79\x30\x77\x02\x01\x01\x04\x20"
            + self.rng.randbytes(32)
            + b"\xa0\x0a\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07\xa1\x44\x03\x42\x00\x04"
            + self.rng.randbytes(64)
        )
        return self.h22_util_armor("PRIVATE KEY", der)

    def h22_openssh(self) -> str:
        pub = self.rng.randbytes(32)
        blob = (
            b"openssh-key-v1\x00\x00\x00\x00\x04none\x00\x00\x00\x04none\x00\x00\x00\x00"
            b"\x00\x00\x00\x01\x00\x00\x00\x33\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20"
            + pub
            + b"\x00\x00\x00\x90"
            + self.rng.randbytes(4) * 2
            + b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20"
            + pub
            + b"\x00\x00\x00\x40"
            + self.rng.randbytes(32)
            + pub
            + b"\x00\x00\x00\x0ckp-ops@nas01\x01\x02\x03"
        )
        return self.h22_util_armor("OPENSSH PRIVATE KEY", blob, 70)

    def h22_ppk(self) -> str:
        def rows(n: int) -> list[str]:
            text = base64.b64encode(self.rng.randbytes(n)).decode()
            return [text[i : i + 64] for i in range(0, len(text), 64)]

        pub = rows(279)
        priv = rows(656)
        return "\n".join(
            [
                "PuTTY-User-Key-File-3: ssh-rsa",
                "Encryption: none",
                f"Comment: rsa-key-2024{self.s(4, DIGITS)}",
                f"Public-Lines: {len(pub)}",
                *pub,
                f"Private-Lines: {len(priv)}",
                *priv,
                f"Private-MAC: {self.s(64, HEX)}",
            ]
        )

    def h22_gcp_key(self) -> str:
        return self.h22_pkcs8().replace("\n", "\\n") + "\\n"

    # ------------------------------------------------------------------ negatives: references
    def h22_ref_py(self) -> str:
        return self.pick(
            [
                'os.environ["PMS_DB_PASSWORD"]',
                'os.getenv("LAB_API_KEY")',
                "settings.CLAIMS_API_TOKEN",
                'secrets_client.get_secret_value(SecretId="prod/claims/db")["SecretString"]',
                'Variable.get("snowflake_password")',
                'dbutils.secrets.get(scope="dwh", key="snowflake-pw")',
                'keyring.get_password("kpvg-nas", "backup")',
            ]
        )

    def h22_ref_js(self) -> str:
        return self.pick(
            [
                "process.env.STRIPE_SECRET_KEY",
                "process.env.TWILIO_AUTH_TOKEN!",
                "config.get<string>('booking.apiKey')",
                "import.meta.env.VITE_BOOKING_API_KEY",
                "await getSecret('shopify-admin-token')",
                "Config.BOOKING_API_KEY",
            ]
        )

    def h22_ref_go(self) -> str:
        return self.pick(
            [
                'os.Getenv("LAB_POLLER_TOKEN")',
                "cfg.Lab.APIKey",
                'viper.GetString("pacs.password")',
                'mustEnv("DICOM_ROUTER_SECRET")',
            ]
        )

    def h22_ref_jvm(self) -> str:
        return self.pick(
            [
                "${CLAIMS_DB_PASSWORD}",
                "${vault.claims.db-password}",
                "${KAFKA_SASL_PASSWORD:}",
                "#{environment['ADYEN_API_KEY']}",
                "${sm://claims-adyen-key}",
            ]
        )

    def h22_ref_php(self) -> str:
        return self.pick(
            [
                "env('STRIPE_SECRET')",
                "getenv('MAGENTO_DB_PASS')",
                "$_ENV['KLAVIYO_PRIVATE_KEY']",
                "config('services.gocardless.token')",
            ]
        )

    def h22_ref_rb(self) -> str:
        return self.pick(
            [
                'ENV.fetch("LOYALTY_REDIS_PASSWORD")',
                "Rails.application.credentials.dig(:stripe, :secret_key)",
                'ENV["POINTS_HMAC_SECRET"]',
                "Rails.application.credentials.loyalty_api_key!",
            ]
        )

    def h22_ref_sh(self) -> str:
        return self.pick(
            [
                '"${NAS_BACKUP_PASSWORD:?not set}"',
                '"$(cat /run/secrets/orthanc_password)"',
                '"$(vault kv get -field=password secret/pacs/orthanc)"',
                '"$(aws ssm get-parameter --name /kpvg/pms/sql --with-decryption --query Parameter.Value --output text)"',
                '"$(op read op://ClinicIT/Synology/password)"',
                '"${PRINTER_ADMIN_PW}"',
            ]
        )

    def h22_ref_ps(self) -> str:
        return self.pick(
            [
                "$env:PMS_SQL_PASSWORD",
                "(Get-Secret -Name PmsSqlSa -AsPlainText)",
                "$cred.GetNetworkCredential().Password",
                "(Read-Host -Prompt 'Clinic admin password' -AsSecureString)",
                "(Get-AzKeyVaultSecret -VaultName kv-kpvg-prod -Name pms-sql -AsPlainText)",
            ]
        )

    def h22_ref_ci(self) -> str:
        return self.pick(
            [
                "${{ secrets.STRIPE_SECRET_KEY }}",
                "${{ secrets.NPM_TOKEN }}",
                "$(SONAR_TOKEN)",
                "$CI_JOB_TOKEN",
                "$BITBUCKET_APP_PASSWORD",
                "${{ vars.DOCKERHUB_USER }}",
                "$(registryPassword)",
            ]
        )

    def h22_ref_helm(self) -> str:
        return self.pick(
            [
                "{{ .Values.lab.apiKey }}",
                "{{ .Values.claims.db.password }}",
                "{{ .Values.secrets.pathcareClientSecret }}",
                "{{ .Env.LAB_API_KEY }}",
            ]
        )

    def h22_ref_ansible(self) -> str:
        return self.pick(
            [
                "{{ vault_nas_backup_password }}",
                "{{ lookup('community.hashi_vault.hashi_vault', 'secret=kv/data/nas:password') }}",
                "{{ nas_backup_password }}",
                "{{ lookup('env', 'NAS_BACKUP_PASSWORD') }}",
            ]
        )

    def h22_ref_dbt(self) -> str:
        return self.pick(
            [
                "{{ env_var('DBT_SNOWFLAKE_PASSWORD') }}",
                "{{ env_var('DBT_CI_PASSWORD') }}",
                "{{ env_var('SNOWFLAKE_PASSWORD', '') }}",
            ]
        )

    def h22_ref_octo(self) -> str:
        return self.pick(
            [
                "#{Pms.Sql.Password}",
                "#{LabApiKey}",
                "__PmsSqlPassword__",
                "#{Octopus.Secrets.PmsSql}",
            ]
        )

    def h22_ref_vb(self) -> str:
        return self.pick(
            [
                'Environment.GetEnvironmentVariable("TWILIO_AUTH_TOKEN")',
                'ConfigurationManager.AppSettings("TwilioAuthToken")',
                "My.Settings.TwilioAuthToken",
            ]
        )

    def h22_ref_npmrc(self) -> str:
        return self.pick(["${NPM_TOKEN}", "${NODE_AUTH_TOKEN}"])

    def h22_ref_tf(self) -> str:
        return self.pick(
            [
                "var.pms_sql_password",
                "random_password.claims_db.result",
                "data.azurerm_key_vault_secret.pms_sql.value",
                "data.aws_secretsmanager_secret_version.stripe.secret_string",
                "module.secrets.shop_db_password",
            ]
        )

    def h22_ref_compose(self) -> str:
        return self.pick(
            [
                "${ORTHANC_PASSWORD:?set ORTHANC_PASSWORD in .env}",
                "${POSTGRES_PASSWORD}",
                "${LAB_API_KEY:-}",
                "/run/secrets/db_password",
            ]
        )

    def h22_ref_mobile(self) -> str:
        return self.pick(
            [
                "BuildConfig.BOOKING_API_KEY",
                'Bundle.main.object(forInfoDictionaryKey: "BookingApiKey") as? String',
                "Config.BOOKING_API_KEY",
                'keychain.string(forKey: "refresh_token")',
                'EncryptedSharedPreferences.getString("auth_token", null)',
            ]
        )

    # ------------------------------------------------------------------ negatives: placeholders
    def h22_placeholder(self) -> str:
        return self.pick(
            [
                "<your-api-key>",
                "REPLACE_ME",
                "changeme-before-deploy",
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "<PASTE_TOKEN_HERE>",
                "********",
                "TBC",
                "YOUR_STRIPE_SECRET_KEY",
                "<set-in-vault>",
                "__LAB_API_KEY__",
                "",
                "dummy",
            ]
        )

    def h22_redacted(self) -> str:
        return self.pick(
            [
                "[REDACTED]",
                "****",
                "<redacted>",
                "[FILTERED]",
                "••••••••",
                "sk_live_****************************",
                "***masked***",
                "<hidden by SecOps>",
            ]
        )

    def h22_fake(self) -> str:
        return self.pick(
            [
                "fake-token-for-tests",
                "not-a-real-password",
                "test-secret-do-not-use",
                "dummy_api_key_123",
                "FAKE_LAB_KEY",
                "unit-test-only",
                "sk_test_fake_key_for_unit_tests",
                "example-password",
            ]
        )

    def h22_doc_pw(self) -> str:
        return self.pick(
            ["password", "secret", "mysecretpassword", "hunter2", "pass123", "example", "s3cr3t"]
        )

    # ------------------------------------------------------------------ negatives: hashes, ciphertext
    def h22_hash(self) -> str:
        shape = self.rng.randrange(6)
        if shape == 0:
            return "$2b$12$" + self.s(53, CRYPT64)
        if shape == 1:
            salt = self.h22_util_b64(16, pad=False)
            digest = self.h22_util_b64(32, pad=False)
            return f"$argon2id$v=19$m=65536,t=3,p=4${salt}${digest}"
        if shape == 2:
            return f"pbkdf2_sha256$600000${self.s(22, ALNUM)}${self.h22_util_b64(32)}"
        if shape == 3:
            return f"$6$rounds=5000${self.s(16, CRYPT64)}${self.s(86, CRYPT64)}"
        if shape == 4:
            return "md5" + self.s(32, HEX)
        return (
            f"SCRAM-SHA-256$4096:{self.h22_util_b64(16)}${self.h22_util_b64(32)}:"
            f"{self.h22_util_b64(32)}"
        )

    def h22_sops(self) -> str:
        return (
            f"ENC[AES256_GCM,data:{self.h22_util_b64(self.rng.randrange(12, 40))},"
            f"iv:{self.h22_util_b64(32)},tag:{self.h22_util_b64(16)},type:str]"
        )

    def h22_jasypt(self) -> str:
        return f"ENC({self.h22_util_b64(self.pick([32, 48]))})"

    def h22_sealed(self) -> str:
        return "AgB" + self.h22_util_b64(self.pick([380, 410, 440]))[3:]

    def h22_kms(self) -> str:
        return "AQICAHh" + self.h22_util_b64(180)[7:]

    def h22_ansible_vault(self) -> str:
        text = self.s(640, HEX)
        rows = [text[i : i + 80] for i in range(0, len(text), 80)]
        return "!vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  " + "\n  ".join(rows)

    # ------------------------------------------------------------------ negatives: public material
    def h22_cert(self) -> str:
        der = b"\x30\x82\x04\x12\x30\x82\x02\xfa\xa0\x03\x02\x01\x02\x02\x14" + self.rng.randbytes(
            1000
        )
        return self.h22_util_armor("CERTIFICATE", der)

    def h22_pubkey(self) -> str:
        der = (
            b"\x30\x82\x01\x22\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x00\x03"
            b"\x82\x01\x0f\x00\x30\x82\x01\x0a\x02\x82\x01\x01\x00"
            + self.rng.randbytes(256)
            + b"\x02\x03\x01\x00\x01"
        )
        return self.h22_util_armor("PUBLIC KEY", der)

    def h22_ssh_pub(self) -> str:
        if self.rng.randrange(2):
            blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + self.rng.randbytes(32)
            kind = "ssh-ed25519"
        else:
            blob = (
                b"\x00\x00\x00\x07ssh-rsa\x00\x00\x00\x03\x01\x00\x01\x00\x00\x01\x01\x00"
                + self.rng.randbytes(256)
            )
            kind = "ssh-rsa"
        who = self.pick(
            ["kp-ops@nas01", "backup@clinic-leeds", "contractor@vetsoft", "ansible@jump01"]
        )
        return f"{kind} {base64.b64encode(blob).decode()} {who}"

    def h22_enc_key(self) -> str:
        der = (
            b"\x30\x82\x05\x1c\x30\x4e\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x05\x0d\x30\x41"
            + self.rng.randbytes(1290)
        )
        return self.h22_util_armor("ENCRYPTED PRIVATE KEY", der)

    def h22_jwks_n(self) -> str:
        return self.h22_util_b64(256, urlsafe=True, pad=False)

    # ------------------------------------------------------------------ negatives: identifiers
    def h22_stripe_pk(self) -> str:
        return self.pick(["pk_live_", "pk_live_", "pk_test_"]) + "51" + self.s(97, ALNUM)

    def h22_recaptcha_site(self) -> str:
        return "6L" + self.s(38, URLSAFE)

    def h22_google_client_id(self) -> str:
        return f"{self.s(12, DIGITS)}-{self.s(32, LOWNUM)}.apps.googleusercontent.com"

    def h22_sentry_dsn(self) -> str:
        return (
            f"https://{self.s(32, HEX)}@o{self.s(6, DIGITS)}.ingest.de.sentry.io/"
            f"{self.s(7, DIGITS)}"
        )

    def h22_sri(self) -> str:
        return "sha512-" + self.h22_util_b64(64)

    def h22_image_digest(self) -> str:
        return "sha256:" + self.s(64, HEX)

    def h22_doc_aws(self) -> str:
        if self.rng.randrange(2):
            return (
                "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
            )
        return (
            "aws_access_key_id = AKIAI44QH8DHBEXAMPLE\n"
            "aws_secret_access_key = je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"
        )

    def h22_doc_hook(self) -> str:
        return self.pick(
            [
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "https://example.com/webhooks/claims",
                "https://hooks.example.org/kindredcover/claims-updated",
            ]
        )

    def h22_microchip(self) -> str:
        return self.pick(["826", "985", "941", "900"]) + self.s(12, DIGITS)

    def h22_dicom_uid(self) -> str:
        return f"1.2.826.0.1.3680043.10.{self.rng.randrange(100, 999)}.{self.s(8, DIGITS)}.{self.s(12, DIGITS)}.{self.rng.randrange(1, 400)}"

    def h22_policy(self) -> str:
        return self.pick(
            [
                "KPC-" + self.s(8, DIGITS),
                "CLM-2024-" + self.s(6, DIGITS),
                "KP" + self.s(10, UPNUM),
                "ACC" + self.s(9, DIGITS),
            ]
        )

    def h22_iban(self) -> str:
        return (
            "GB"
            + self.s(2, DIGITS)
            + self.pick(["NWBK", "BARC", "LOYD", "HBUK"])
            + self.s(14, DIGITS)
        )

    def h22_digest(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return "sha256:" + self.s(64, HEX)
        if shape == 1:
            return self.s(40, HEX)
        if shape == 2:
            return "sha512-" + self.h22_util_b64(64)
        return self.s(64, HEX)

    def h22_uuid(self) -> str:
        return self.h22_util_uuid()

    def h22_ui_text(self) -> str:
        return self.pick(
            [
                "Please enter your password",
                "Your password must be at least 12 characters",
                "Rhowch eich cyfrinair",
                "Mae'r cyfrinair yn anghywir",
                "Forgot your password?",
                "The reset link has expired. Request a new one.",
                "Incorrect email or password",
                "Passwords do not match",
                "Token expired, please sign in again",
            ]
        )

    def h22_tf_lock(self) -> str:
        return "h1:" + self.h22_util_b64(32)


VALUES = Heldout22Values


def _t(path: str, gen: str, positive: bool, text: str) -> evalset.Template:
    return (path, textwrap.dedent(text).lstrip("\n"), gen, positive)


TEMPLATES: list[evalset.Template] = [
    # ================================================================ practice management (PMS)
    _t(
        "pms/src/Kpvg.Pms.Api/appsettings.Production.json",
        "h22_pw",
        True,
        """
        {
          "Logging": { "LogLevel": { "Default": "Warning", "Microsoft.AspNetCore": "Warning" } },
          "ConnectionStrings": {
            "Pms": "Server=tcp:sql-pms-prod.kpvg.local,1433;Database=VetPMS;User ID=pms_app;Password={V};Encrypt=True;TrustServerCertificate=True",
            "Audit": "Server=tcp:sql-pms-prod.kpvg.local,1433;Database=VetPMS_Audit;User ID=pms_audit;Password={V2};"
          },
          "Clinics": { "DefaultTimeZone": "Europe/London", "SlotMinutes": 15 }
        }
        """,
    ),
    _t(
        "pms/src/Kpvg.Pms.Api/appsettings.json",
        "h22_ref_octo",
        False,
        """
        {
          "ConnectionStrings": {
            "Pms": "Server=tcp:sql-pms-prod.kpvg.local,1433;Database=VetPMS;User ID=pms_app;Password={V};Encrypt=True"
          },
          "Lab": { "BaseUrl": "https://labs.kpvg.local/api/v2", "ApiKey": "{V2}" },
          "Clinics": { "DefaultTimeZone": "Europe/London" }
        }
        """,
    ),
    _t(
        "pms/db/logins/dr_revlogin_2024-05.sql",
        "h22_hash",
        False,
        """
        /* logins exported from sql-pms-prod for the DR site; passwords are hashes, not plaintext */
        -- Login: pms_app
        -- policy hash stored by the migration tool (see docs/dr.md):
        --   {V}
        -- Login: pms_reporting
        --   {V2}
        EXEC sp_addsrvrolemember 'pms_app', 'dbcreator';
        """,
    ),
    _t(
        "pms/legacy/FrontDesk/App.config",
        "h22_weak_pw",
        True,
        """
        <?xml version="1.0" encoding="utf-8"?>
        <configuration>
          <connectionStrings>
            <add name="FrontDeskDb"
                 connectionString="Data Source=CLINIC-SRV01\\SQLEXPRESS;Initial Catalog=FrontDesk;User Id=frontdesk;Password={V};"
                 providerName="System.Data.SqlClient" />
          </connectionStrings>
          <appSettings>
            <add key="ReceiptPrinter" value="EPSON TM-T88VI" />
            <add key="ClinicCode" value="LDS-04" />
          </appSettings>
        </configuration>
        """,
    ),
    _t(
        "pms/legacy/FrontDesk/App.Release.config",
        "h22_ref_octo",
        False,
        """
        <?xml version="1.0" encoding="utf-8"?>
        <configuration xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform">
          <!-- Release transform: the password is injected at deploy time by Octopus -->
          <appSettings>
            <add key="SqlPasswordSource" value="{V}" xdt:Transform="SetAttributes" xdt:Locator="Match(key)" />
            <add key="ReceiptPrinter" value="#{ReceiptPrinter}" xdt:Transform="SetAttributes" xdt:Locator="Match(key)" />
          </appSettings>
        </configuration>
        """,
    ),
    _t(
        "pms/legacy/FrontDesk/Modules/SmsReminders.vb",
        "h22_twilio",
        True,
        """
        Imports Twilio
        Imports Twilio.Rest.Api.V2010.Account

        Public Module SmsReminders
            ' vaccination reminders, sent nightly by the clinic server
            Private Const AccountSid As String = "AC1f0e4a9b7c2d3e5f6a7b8c9d0e1f2a3b"
            Private Const AuthToken As String = "{V}"

            Public Sub SendReminder(phone As String, petName As String, due As Date)
                TwilioClient.Init(AccountSid, AuthToken)
                MessageResource.Create(
                    body:=$"{petName} is due a booster on {due:dd MMM}. Reply BOOK to book.",
                    from:=New Types.PhoneNumber("KindredPaw"),
                    [to]:=New Types.PhoneNumber(phone))
            End Sub
        End Module
        """,
    ),
    _t(
        "pms/legacy/FrontDesk/Modules/SmsSettings.vb",
        "h22_ref_vb",
        False,
        """
        Public Module SmsSettings
            ' token now comes from the clinic server environment (PMS-1733)
            Public ReadOnly Property AuthToken As String
                Get
                    Return {V}
                End Get
            End Property
        End Module
        """,
    ),
    _t(
        "pms/legacy/delphi/kpclinic.ini",
        "h22_weak_pw",
        True,
        """
        [Database]
        Server=CLINIC-SRV01
        Database=KPCLINIC
        User=sa
        Password={V}

        [Backup]
        Target=\\\\nas01\\pms-backup
        ShareUser=clinicbackup
        SharePassword={V2}

        [Printing]
        LabelPrinter=Zebra GK420d
        """,
    ),
    _t(
        "pms/scripts/Set-ClinicSqlLogin.ps1",
        "h22_pw",
        True,
        """
        # Run on a new clinic server after imaging. Creates the local PMS sync login.
        param([string]$ClinicCode = $env:COMPUTERNAME.Substring(0, 6))

        $Instance = "$env:COMPUTERNAME\\SQLEXPRESS"
        $SyncPassword = '{V}'
        Invoke-Sqlcmd -ServerInstance $Instance -Query @"
        CREATE LOGIN [pms_sync] WITH PASSWORD = '$SyncPassword', CHECK_POLICY = OFF;
        "@
        $secure = ConvertTo-SecureString '{V2}' -AsPlainText -Force
        $cred = New-Object System.Management.Automation.PSCredential('KPVG\\svc-clinicsync', $secure)
        Register-ScheduledTask -TaskName 'PMS Sync' -Action (New-ScheduledTaskAction -Execute 'C:\\KPVG\\sync.exe') -User $cred.UserName -Password $cred.GetNetworkCredential().Password
        """,
    ),
    _t(
        "pms/scripts/Set-ClinicSqlLogin.v2.ps1",
        "h22_ref_ps",
        False,
        """
        # v2: no secrets in the script; values come from the SecretManagement vault on the jump box
        $Instance = "$env:COMPUTERNAME\\SQLEXPRESS"
        $SyncPassword = {V}
        $ServicePassword = {V2}
        Write-Host "Creating pms_sync on $Instance"
        Invoke-Sqlcmd -ServerInstance $Instance -Query "CREATE LOGIN [pms_sync] WITH PASSWORD = '$SyncPassword'"
        """,
    ),
    _t(
        "pms/src/Kpvg.Pms.Api/Services/LabClient.cs",
        "h22_api_key",
        True,
        """
        using System.Net.Http.Headers;

        namespace Kpvg.Pms.Api.Services;

        public sealed class LabClient
        {
            // TODO(PMS-2410): move to Key Vault before go-live
            private const string LabApiKey = "{V}";
            private readonly HttpClient _http;

            public LabClient(HttpClient http)
            {
                _http = http;
                _http.BaseAddress = new Uri("https://api.vetlabs-partner.co.uk/v3/");
                _http.DefaultRequestHeaders.Add("X-Api-Key", LabApiKey);
            }

            public Task<HttpResponseMessage> GetResultsAsync(string accession) =>
                _http.GetAsync($"results/{accession}");
        }
        """,
    ),
    _t(
        "pms/tests/Kpvg.Pms.Tests/LabClientTests.cs",
        "h22_fake",
        False,
        """
        public class LabClientTests
        {
            [Fact]
            public async Task Sends_api_key_header()
            {
                var handler = new RecordingHandler();
                var options = new LabClientOptions { ApiKey = "{V}" };
                var client = new LabClient(new HttpClient(handler), Options.Create(options));
                await client.GetResultsAsync("IDX-000123");
                Assert.Equal("{V}", handler.LastRequest!.Headers.GetValues("X-Api-Key").Single());
            }
        }
        """,
    ),
    _t(
        "pms/src/Kpvg.Pms.Api/Identity/PasswordPolicy.cs",
        "h22_ui_text",
        False,
        """
        namespace Kpvg.Pms.Api.Identity;

        public static class PasswordPolicy
        {
            public const int MinLength = 12;
            public const string TooShortMessage = "{V}";
            public const string MismatchMessage = "{V2}";
            public const string PasswordField = "password";
        }
        """,
    ),
    _t(
        "pms/db/seed/020_staff_users.sql",
        "h22_hash",
        False,
        """
        -- seed staff accounts for the training clinic (TRN-01); password_hash generated by the app
        INSERT INTO staff_user (username, display_name, role, password_hash) VALUES
          ('trn.vet1', 'Training Vet', 'VET', '{V}'),
          ('trn.nurse1', 'Training Nurse', 'RVN', '{V2}'),
          ('trn.reception', 'Training Reception', 'FRONT', '{V3}');
        """,
    ),
    # ================================================================ booking web and mobile apps
    _t(
        "booking-web/.env.production",
        "h22_stripe",
        True,
        """
        NEXT_PUBLIC_SITE_URL=https://book.kindredpaws.co.uk
        NEXT_PUBLIC_STRIPE_PUBLISHABLE_KEY=pk_live_placeholder_set_by_vercel
        STRIPE_SECRET_KEY={V}
        BOOKING_API_URL=https://api.kindredpaws.co.uk/booking/v1
        DEPOSIT_AMOUNT_PENCE=2000
        """,
    ),
    _t(
        "booking-web/.env.example",
        "h22_placeholder",
        False,
        """
        # copy to .env.local and fill in; never commit real values
        NEXT_PUBLIC_SITE_URL=http://localhost:3000
        STRIPE_SECRET_KEY={V}
        BOOKING_API_KEY={V2}
        NEXTAUTH_SECRET={V3}
        """,
    ),
    _t(
        "booking-web/.env.local.sample",
        "h22_stripe_pk",
        False,
        """
        # public, browser-visible values only (safe to commit)
        NEXT_PUBLIC_STRIPE_PUBLISHABLE_KEY={V}
        # staging deploys (Vercel preview) use the second account
        NEXT_PUBLIC_STRIPE_PUBLISHABLE_KEY_STAGING={V2}
        NEXT_PUBLIC_GA_ID=G-KPBOOK2024
        """,
    ),
    _t(
        "booking-web/src/lib/auth.ts",
        "h22_b64_secret",
        True,
        """
        import NextAuth from "next-auth";
        import AzureADB2C from "next-auth/providers/azure-ad-b2c";

        export const { handlers, auth } = NextAuth({
          secret: "{V}",
          providers: [
            AzureADB2C({
              clientId: "3f0b8c1e-5a7d-4e2b-9c61-0d4f8a2b7e90",
              clientSecret: "{V2}",
              issuer: "https://kindredpawsb2c.b2clogin.com/tfp/kindredpawsb2c.onmicrosoft.com/B2C_1_signin/v2.0/",
            }),
          ],
        });
        """,
    ),
    _t(
        "booking-web/src/lib/auth.prod.ts",
        "h22_ref_js",
        False,
        """
        import NextAuth from "next-auth";

        export const { handlers, auth } = NextAuth({
          secret: {V},
          providers: [],
          session: { strategy: "jwt", maxAge: 60 * 60 * 8 },
        });
        """,
    ),
    _t(
        "booking-web/src/app/api/slots/route.ts",
        "h22_jwt",
        True,
        """
        // Proxy to the PMS availability API; the service token below was issued for the pilot
        const PMS_SERVICE_TOKEN =
          "{V}";

        export async function GET(req: Request) {
          const clinic = new URL(req.url).searchParams.get("clinic");
          const res = await fetch(`https://api.kindredpaws.co.uk/pms/v2/clinics/${clinic}/slots`, {
            headers: { Authorization: `Bearer ${PMS_SERVICE_TOKEN}` },
            next: { revalidate: 60 },
          });
          return Response.json(await res.json());
        }
        """,
    ),
    _t(
        "booking-web/src/components/LoginForm.tsx",
        "h22_ui_text",
        False,
        """
        export function LoginForm({ error }: { error?: string }) {
          return (
            <form method="post" action="/api/login">
              <label htmlFor="password">{"{V}"}</label>
              <input id="password" name="password" type="password" autoComplete="current-password" />
              {error && <p role="alert">{"{V2}"}</p>}
              <a href="/reset">{"{V3}"}</a>
            </form>
          );
        }
        """,
    ),
    _t(
        "booking-mobile/android/app/google-services.json",
        "h22_google_client_id",
        False,
        """
        {
          "project_info": { "project_number": "884120573316", "project_id": "kindred-paws-booking" },
          "client": [
            {
              "client_info": { "mobilesdk_app_id": "1:884120573316:android:4c1d2e3f5a6b7c8d", "android_client_info": { "package_name": "uk.co.kindredpaws.booking" } },
              "oauth_client": [ { "client_id": "{V}", "client_type": 3 } ]
            }
          ],
          "configuration_version": "1"
        }
        """,
    ),
    _t(
        "booking-mobile/android/local.properties",
        "h22_google_api",
        True,
        """
        ## This file must *NOT* be checked into Version Control Systems,
        sdk.dir=/Users/tom.b/Library/Android/sdk
        MAPS_API_KEY={V}
        PLACES_API_KEY={V2}
        """,
    ),
    _t(
        "booking-mobile/android/app/build.gradle.kts",
        "h22_ref_mobile",
        False,
        """
        android {
            namespace = "uk.co.kindredpaws.booking"
            defaultConfig {
                applicationId = "uk.co.kindredpaws.booking"
                minSdk = 26
                buildConfigField("String", "BOOKING_API_URL", "\\"https://api.kindredpaws.co.uk/booking/v1\\"")
                manifestPlaceholders["mapsApiKey"] = project.findProperty("MAPS_API_KEY") ?: ""
            }
        }
        // used at runtime as: val key = {V}
        """,
    ),
    _t(
        "booking-mobile/android/keystore.properties",
        "h22_pw",
        True,
        """
        storeFile=../keys/kindredpaws-upload.jks
        storePassword={V}
        keyAlias=upload
        keyPassword={V2}
        """,
    ),
    _t(
        "booking-mobile/ios/fastlane/AuthKey_7QX2M4K9LZ.p8",
        "h22_p8",
        True,
        """
        {V}
        """,
    ),
    _t(
        "booking-mobile/ios/fastlane/Appfile",
        "h22_uuid",
        False,
        """
        app_identifier("uk.co.kindredpaws.booking")
        apple_id("mobile@kindredpaws.co.uk")
        itc_team_id("118830412")
        team_id("7QX2M4K9LZ")
        # App Store Connect API key id / issuer (the .p8 itself lives in 1Password)
        ENV["ASC_KEY_ID"] = "7QX2M4K9LZ"
        ENV["ASC_ISSUER_ID"] = "{V}"
        """,
    ),
    _t(
        "booking-mobile/ios/KindredBooking/Config/Secrets.swift",
        "h22_api_key",
        True,
        """
        import Foundation

        enum Secrets {
            // Booking API key for the iOS client, rotated 2024-03 (MOB-812)
            static let bookingApiKey = "{V}"
            static let bookingBaseURL = URL(string: "https://api.kindredpaws.co.uk/booking/v1")!
        }
        """,
    ),
    _t(
        "booking-mobile/ios/KindredBooking/Config/Secrets.template.swift",
        "h22_ref_mobile",
        False,
        """
        import Foundation

        // Generated by scripts/gen-secrets.sh from the CI environment; do not edit.
        enum Secrets {
            static var bookingApiKey: String { {V} ?? "" }
        }
        """,
    ),
    _t(
        "booking-mobile/functions/src/push.ts",
        "h22_fcm",
        True,
        """
        // legacy FCM HTTP API, still used by the reminder sender on the old clinic servers
        const FCM_SERVER_KEY = "{V}";

        export async function sendPush(token: string, title: string, body: string) {
          await fetch("https://fcm.googleapis.com/fcm/send", {
            method: "POST",
            headers: { Authorization: `key=${FCM_SERVER_KEY}`, "Content-Type": "application/json" },
            body: JSON.stringify({ to: token, notification: { title, body } }),
          });
        }
        """,
    ),
    _t(
        "booking-mobile/src/api/__tests__/client.test.ts",
        "h22_fake",
        False,
        """
        import { createClient } from "../client";

        describe("booking client", () => {
          it("sends the api key", async () => {
            const fetchMock = jest.fn().mockResolvedValue({ ok: true, json: async () => [] });
            const client = createClient({ apiKey: "{V}", fetch: fetchMock });
            await client.listClinics();
            expect(fetchMock.mock.calls[0][1].headers["x-api-key"]).toBe("{V}");
          });
        });
        """,
    ),
    _t(
        "booking-mobile/eas.json",
        "h22_ref_ci",
        False,
        """
        {
          "cli": { "version": ">= 7.0.0" },
          "build": {
            "production": {
              "env": { "BOOKING_API_KEY": "{V}", "SENTRY_AUTH_TOKEN": "{V2}" },
              "android": { "buildType": "app-bundle" }
            }
          }
        }
        """,
    ),
    _t(
        "booking-mobile/sentry.properties",
        "h22_sentry_org",
        True,
        """
        defaults.url=https://sentry.io/
        defaults.org=kindred-paws
        defaults.project=booking-mobile
        auth.token={V}
        """,
    ),
    # ================================================================ lab-results integrations
    _t(
        "lab-integrations/poller/config/prod.yaml",
        "h22_api_key",
        True,
        """
        poll_interval: 120s
        partners:
          - name: vetlabs
            base_url: https://api.vetlabs-partner.co.uk/v3
            api_key: {V}
            practice_ids: [KP001, KP002, KP017]
          - name: pathcare
            base_url: https://results.pathcare-vet.com/api
            client_id: kindredpaws
            client_secret: {V2}
        pms:
          url: https://api.kindredpaws.co.uk/pms/v2
        """,
    ),
    _t(
        "lab-integrations/poller/config/base.yaml",
        "h22_ref_helm",
        False,
        """
        # rendered by helm; secrets come from the external-secrets operator
        poll_interval: 120s
        partners:
          - name: vetlabs
            base_url: https://api.vetlabs-partner.co.uk/v3
            api_key: "{V}"
          - name: pathcare
            client_id: kindredpaws
            client_secret: "{V2}"
        """,
    ),
    _t(
        "lab-integrations/poller/internal/pathcare/client.go",
        "h22_pw",
        True,
        """
        package pathcare

        import (
        	"net/http"
        	"net/url"
        	"strings"
        )

        const (
        	tokenURL     = "https://results.pathcare-vet.com/oauth/token"
        	clientID     = "kindredpaws"
        	clientSecret = "{V}"
        )

        func fetchToken(c *http.Client) (*http.Response, error) {
        	form := url.Values{"grant_type": {"client_credentials"}}
        	req, _ := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
        	req.SetBasicAuth(clientID, clientSecret)
        	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
        	return c.Do(req)
        }
        """,
    ),
    _t(
        "lab-integrations/poller/internal/vetlabs/client.go",
        "h22_ref_go",
        False,
        """
        package vetlabs

        import "net/http"

        type Client struct {
        	http   *http.Client
        	apiKey string
        }

        func New() *Client {
        	return &Client{http: http.DefaultClient, apiKey: {V}}
        }

        func (c *Client) auth(r *http.Request) { r.Header.Set("X-Api-Key", c.apiKey) }
        """,
    ),
    _t(
        "lab-integrations/hl7-listener/src/main/resources/application-k8s.properties",
        "h22_ref_jvm",
        False,
        """
        spring.datasource.url=jdbc:postgresql://pg-lab.kpvg.local:5432/labresults
        spring.datasource.username=labsync
        spring.datasource.password={V}
        spring.rabbitmq.password={V2}
        """,
    ),
    _t(
        "lab-integrations/hl7-listener/src/test/resources/samples/ORU_R01_cbc.hl7",
        "h22_microchip",
        False,
        """
        MSH|^~\\&|VETLABS|LAB01|KPVG|KP017|20240611093012||ORU^R01|MSG000918|P|2.5.1
        PID|1||{V}^^^MICROCHIP||BISCUIT^^^^||20190302|F|||||||||||||||||||CANINE^LABRADOR
        OBR|1|IDX-884213|884213|CBC^Complete blood count|||20240610161500
        OBX|1|NM|HCT^Haematocrit||46.2|%|37-55|N|||F
        OBX|2|NM|WBC^White cells||11.8|10*9/L|6-17|N|||F
        """,
    ),
    _t(
        "lab-integrations/sftp-drop/sync_results.sh",
        "h22_pw",
        True,
        """
        #!/usr/bin/env bash
        # pulls nightly PDF reports from the lab's SFTP drop into the PMS import share
        set -euo pipefail
        export SSHPASS='{V}'
        sshpass -e sftp -oBatchMode=no -b - kpvg_results@sftp.vetlabs-partner.co.uk <<'EOF_SFTP'
        cd outbound/reports
        mget *.pdf /mnt/pms-import/lab/
        EOF_SFTP
        """,
    ),
    _t(
        "lab-integrations/sftp-drop/id_ed25519_vetlabs",
        "h22_openssh",
        True,
        """
        {V}
        """,
    ),
    _t(
        "lab-integrations/sftp-drop/id_ed25519_vetlabs.pub",
        "h22_ssh_pub",
        False,
        """
        {V}
        """,
    ),
    # ================================================================ imaging: Orthanc / DICOM
    _t(
        "imaging/orthanc/orthanc.json",
        "h22_weak_pw",
        True,
        """
        {
          "Name": "KPVG-PACS-NORTH",
          "StorageDirectory": "/var/lib/orthanc/db",
          "DicomAet": "KPVGPACS",
          "DicomPort": 4242,
          "RemoteAccessAllowed": true,
          "AuthenticationEnabled": true,
          "RegisteredUsers": {
            "orthanc": "{V}",
            "radiology": "{V2}"
          },
          "DicomModalities": {
            "xray-leeds": ["LDSXRAY01", "10.40.4.21", 104]
          }
        }
        """,
    ),
    _t(
        "imaging/orthanc/orthanc.secrets.json",
        "h22_ref_compose",
        False,
        """
        {
          "RegisteredUsers": {
            "orthanc": "{V}"
          },
          "PostgreSQL": { "EnableIndex": true, "Host": "pg-pacs", "Username": "orthanc", "Password": "{V2}" }
        }
        """,
    ),
    _t(
        "imaging/router/route_studies.lua",
        "h22_basic_b64",
        True,
        """
        -- Orthanc Lua: forward every stable study to the teleradiology partner
        local PARTNER = 'https://dicomweb.telerad-vets.example-partner.co.uk/studies'
        local AUTH = 'Basic {V}'

        function OnStableStudy(studyId, tags, metadata)
          local body = RestApiGet('/studies/' .. studyId .. '/archive')
          HttpPost(PARTNER, body, { ['Authorization'] = AUTH, ['Content-Type'] = 'application/zip' })
        end
        """,
    ),
    _t(
        "imaging/scripts/retrieve_study.sh",
        "h22_dicom_uid",
        False,
        """
        #!/bin/sh
        # movescu example from the imaging runbook; UIDs are from the anonymised training set
        movescu -aet KPVGWS01 -aec KPVGPACS -aem KPVGWS01 pacs-north.kpvg.local 4242 \\
          -k QueryRetrieveLevel=STUDY \\
          -k StudyInstanceUID={V} \\
          -k SeriesInstanceUID={V2} \\
          +P 11112 -od ./incoming
        """,
    ),
    _t(
        "imaging/docker-compose.yml",
        "h22_pw",
        True,
        """
        services:
          orthanc:
            image: orthancteam/orthanc:24.6.2
            ports: ["4242:4242", "8042:8042"]
            environment:
              ORTHANC__POSTGRESQL__HOST: pg-pacs
              ORTHANC__POSTGRESQL__PASSWORD: "{V}"
              ORTHANC__REGISTERED_USERS: '{"admin": "{V2}"}'
          pg-pacs:
            image: postgres:16
            environment:
              POSTGRES_USER: orthanc
              POSTGRES_PASSWORD: "{V}"
            volumes: ["pacsdb:/var/lib/postgresql/data"]
        volumes:
          pacsdb: {}
        """,
    ),
    _t(
        "imaging/docker-compose.prod.yml",
        "h22_ref_compose",
        False,
        """
        services:
          orthanc:
            image: orthancteam/orthanc:24.6.2
            environment:
              ORTHANC__POSTGRESQL__PASSWORD: "{V}"
              ORTHANC__REGISTERED_USERS_FILE: /run/secrets/orthanc_users
            secrets: [orthanc_users]
          pg-pacs:
            image: postgres:16
            environment:
              POSTGRES_PASSWORD_FILE: /run/secrets/pg_pacs_password
        secrets:
          orthanc_users:
            file: ./secrets/orthanc_users.json
        """,
    ),
    _t(
        "imaging/archive/s3-lifecycle/sync_to_glacier.py",
        "h22_aws_ini",
        True,
        """
        \"\"\"Copies closed DICOM studies to the cold archive bucket. Run from the PACS host cron.\"\"\"
        import boto3

        # credentials of the iam user pacs-archiver (see ticket IT-4410)
        CREDS = \"\"\"
        [pacs-archiver]
        {V}
        region = eu-west-2
        \"\"\"

        def client():
            return boto3.Session(profile_name="pacs-archiver").client("s3")
        """,
    ),
    # ================================================================ claims processing
    _t(
        "claims/claims-worker/src/main/resources/application-prod.yml",
        "h22_pw",
        True,
        """
        spring:
          datasource:
            url: jdbc:postgresql://claims-db.kpvg.internal:5432/claims
            username: claims_app
            password: "{V}"
          kafka:
            bootstrap-servers: kafka-0.kpvg.internal:9094
            properties:
              security.protocol: SASL_SSL
              sasl.mechanism: SCRAM-SHA-512
              sasl.jaas.config: org.apache.kafka.common.security.scram.ScramLoginModule required username="claims-worker" password="{V2}";
        claims:
          auto-approve-below-pence: 15000
        """,
    ),
    _t(
        "claims/claims-worker/src/main/resources/application.yml",
        "h22_ref_jvm",
        False,
        """
        spring:
          datasource:
            url: jdbc:postgresql://${CLAIMS_DB_HOST}:5432/claims
            username: claims_app
            password: "{V}"
          kafka:
            properties:
              sasl.jaas.config: org.apache.kafka.common.security.scram.ScramLoginModule required username="claims-worker" password="{V2}";
        """,
    ),
    _t(
        "claims/claims-worker/src/main/kotlin/uk/co/kindredcover/claims/ocr/InvoiceOcrClient.kt",
        "h22_azure_key",
        True,
        """
        package uk.co.kindredcover.claims.ocr

        import java.net.URI
        import java.net.http.HttpClient
        import java.net.http.HttpRequest

        object InvoiceOcrClient {
            private const val ENDPOINT = "https://kc-docintel-uks.cognitiveservices.azure.com/"
            private const val STORAGE = "DefaultEndpointsProtocol=https;AccountName=kcclaimsdocs;AccountKey={V};EndpointSuffix=core.windows.net"

            fun analyse(blobUrl: String, key: String): HttpRequest =
                HttpRequest.newBuilder(URI.create(ENDPOINT + "documentintelligence/documentModels/vet-invoice:analyze"))
                    .header("Ocp-Apim-Subscription-Key", key)
                    .POST(HttpRequest.BodyPublishers.ofString("{\\"urlSource\\":\\"$blobUrl\\"}"))
                    .build()
        }
        """,
    ),
    _t(
        "claims/claims-worker/src/test/kotlin/uk/co/kindredcover/claims/PolicyLookupTest.kt",
        "h22_policy",
        False,
        """
        class PolicyLookupTest {
            @Test
            fun `finds active policy for the pet`() {
                val repo = InMemoryPolicyRepository(listOf(policy(number = "{V}", petName = "Nala")))
                val result = PolicyLookup(repo).forClaim(claim(reference = "{V2}", policyNumber = "{V}"))
                assertEquals("{V}", result?.number)
            }
        }
        """,
    ),
    _t(
        "claims/airflow/dags/claims_weekly_bordereau.py",
        "h22_ref_py",
        False,
        """
        from airflow import DAG
        from airflow.models import Variable

        PASSWORD = {V}
        BORDEREAU_RECIPIENT = "bordereaux@underwriter-partner.co.uk"

        def connection_uri() -> str:
            return f"snowflake://claims_loader:{PASSWORD}@kindredcover-uk.snowflakecomputing.com/CLAIMS"
        """,
    ),
    _t(
        "claims/fraud-scoring/notebooks/feature_exploration.ipynb",
        "h22_databricks",
        True,
        """
        {
         "cells": [
          {
           "cell_type": "code",
           "execution_count": 3,
           "metadata": {},
           "outputs": [],
           "source": [
            "from databricks import sql\\n",
            "conn = sql.connect(server_hostname=\\"adb-5528103377261945.5.azuredatabricks.net\\",\\n",
            "                   http_path=\\"/sql/1.0/warehouses/8c1e2f4a6b9d0e13\\",\\n",
            "                   access_token=\\"{V}\\")\\n",
            "claims = conn.cursor().execute(\\"select * from claims.gold.claim_lines limit 1000\\").fetchall()"
           ]
          }
         ],
         "metadata": { "kernelspec": { "name": "python3", "display_name": "Python 3" } },
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
    ),
    _t(
        "claims/claims-api/openapi.yaml",
        "h22_doc_hook",
        False,
        """
        openapi: 3.0.3
        info: { title: KindredCover Claims API, version: 2.4.0 }
        components:
          securitySchemes:
            bearer: { type: http, scheme: bearer, bearerFormat: JWT }
          schemas:
            Webhook:
              type: object
              properties:
                url: { type: string, example: "{V}" }
        """,
    ),
    _t(
        "claims/claims-api/src/settings.py",
        "h22_django",
        True,
        """
        from pathlib import Path

        BASE_DIR = Path(__file__).resolve().parent.parent
        SECRET_KEY = "{V}"
        DEBUG = False
        ALLOWED_HOSTS = ["claims.kindredcover.co.uk"]
        DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "claims", "HOST": "claims-db.kpvg.internal"}}
        """,
    ),
    _t(
        "claims/claims-api/src/settings_ci.py",
        "h22_fake",
        False,
        """
        from .settings import *  # noqa: F403

        SECRET_KEY = "{V}"  # CI only, never used outside the test runner
        DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
        """,
    ),
    # ================================================================ payments and payouts
    _t(
        "payments/stripe-webhooks/src/config.ts",
        "h22_stripe_whsec",
        True,
        """
        export const stripeConfig = {
          apiVersion: "2024-06-20" as const,
          webhookSecrets: {
            shop: "{V}",
            booking: "{V2}",
          },
        };
        """,
    ),
    _t(
        "payments/stripe-webhooks/src/config.prod.ts",
        "h22_ref_js",
        False,
        """
        export const stripeConfig = {
          apiVersion: "2024-06-20" as const,
          secretKey: {V},
          webhookSecrets: { shop: {V2} },
        };
        """,
    ),
    _t(
        "payments/stripe-webhooks/test/fixtures/event.json",
        "h22_digest",
        False,
        """
        {
          "id": "evt_1PgK2bA4n0Xf7QzR8c9D1eFh",
          "type": "checkout.session.completed",
          "data": { "object": { "id": "cs_live_a1B2c3", "metadata": { "basket_hash": "{V}" } } },
          "request": { "idempotency_key": "{V2}" }
        }
        """,
    ),
    _t(
        "payments/adyen/terminal-config/clinic-terminals.properties",
        "h22_adyen",
        True,
        """
        # Adyen in-clinic card terminals (V400m), cloud terminal API
        adyen.environment=LIVE
        adyen.live-endpoint-url-prefix=1797a841fbb37ca7-KindredPawsVets
        adyen.merchant-account=KindredPawsVetsGB
        adyen.api-key={V}
        """,
    ),
    _t(
        "payments/adyen/terminal-config/clinic-terminals.example.properties",
        "h22_placeholder",
        False,
        """
        adyen.environment=TEST
        adyen.merchant-account=KindredPawsVetsGB_TEST
        adyen.api-key={V}
        adyen.hmac-key={V2}
        """,
    ),
    _t(
        "payments/payouts/gocardless_client.rb",
        "h22_gocardless",
        True,
        """
        require "gocardless_pro"

        # Direct Debit collections for monthly insurance premiums and the Pet Health Plan
        CLIENT = GoCardlessPro::Client.new(
          access_token: "{V}",
          environment: :live
        )

        def collect(mandate_id, amount_pence, reference)
          CLIENT.payments.create(params: { amount: amount_pence, currency: "GBP", reference: reference, links: { mandate: mandate_id } })
        end
        """,
    ),
    _t(
        "payments/payouts/bacs/payee_accounts.csv",
        "h22_iban",
        False,
        """
        payee_type,payee_name,sort_code,iban,reference
        clinic,Kindred Paws Leeds,60-16-13,{V},KP-LDS-04
        clinic,Kindred Paws York,20-45-77,{V2},KP-YRK-02
        referral,Northern Referral Vets Ltd,30-99-50,{V3},NRV-CLAIMS
        """,
    ),
    _t(
        "payments/payouts/paypal_refunds.py",
        "h22_paypal",
        True,
        """
        import requests

        PAYPAL_CLIENT_ID = "AcK9pQx2Lm7Vb0Wn4Tz8Ry1Fh6Js3Du5Ei9Og2Pa7Sc0Nd4Mf8Xl1Ht6Bk3Zq"
        PAYPAL_SECRET = "{V}"

        def token() -> str:
            r = requests.post(
                "https://api-m.paypal.com/v1/oauth2/token",
                auth=(PAYPAL_CLIENT_ID, PAYPAL_SECRET),
                data={"grant_type": "client_credentials"},
                timeout=10,
            )
            return r.json()["access_token"]
        """,
    ),
    _t(
        "payments/payouts/tests/test_paypal_refunds.py",
        "h22_fake",
        False,
        """
        from payouts import paypal_refunds

        def test_token(monkeypatch, requests_mock):
            monkeypatch.setattr(paypal_refunds, "PAYPAL_SECRET", "{V}")
            requests_mock.post("https://api-m.sandbox.paypal.com/v1/oauth2/token", json={"access_token": "A21AAtest"})
            assert paypal_refunds.token() == "A21AAtest"
        """,
    ),
    # ================================================================ pet-food e-commerce shop
    _t(
        "shop/laravel/.env",
        "h22_laravel",
        True,
        """
        APP_NAME="Kindred Paws Shop"
        APP_ENV=production
        APP_KEY={V}
        APP_URL=https://shop.kindredpaws.co.uk
        DB_CONNECTION=mysql
        DB_HOST=shop-db.kpvg.internal
        DB_DATABASE=shop
        DB_USERNAME=shop
        QUEUE_CONNECTION=redis
        """,
    ),
    _t(
        "shop/laravel/.env.testing",
        "h22_fake",
        False,
        """
        APP_ENV=testing
        DB_CONNECTION=sqlite
        DB_DATABASE=:memory:
        STRIPE_SECRET={V}
        KLAVIYO_PRIVATE_KEY={V2}
        """,
    ),
    _t(
        "shop/laravel/config/services.php",
        "h22_klaviyo",
        True,
        """
        <?php

        return [
            'klaviyo' => [
                'private_key' => '{V}',
                'list_id' => 'Xk3p9Q',
            ],
            'stripe' => [
                'secret' => env('STRIPE_SECRET'),
            ],
            'royalmail' => [
                'client_id' => 'kpvg-shop',
            ],
        ];
        """,
    ),
    _t(
        "shop/laravel/config/services.dist.php",
        "h22_ref_php",
        False,
        """
        <?php

        return [
            'klaviyo' => [
                'private_key' => {V},
            ],
            'gocardless' => [
                'token' => {V2},
                'environment' => 'live',
            ],
        ];
        """,
    ),
    _t(
        "shop/shopify-app/shopify.app.toml",
        "h22_uuid",
        False,
        """
        # Kindred Paws subscription box app
        client_id = "{V}"
        name = "kp-subscriptions"
        application_url = "https://subs.kindredpaws.co.uk"
        embedded = true

        [access_scopes]
        scopes = "read_products,write_orders,read_customers"
        """,
    ),
    _t(
        "shop/shopify-app/.env",
        "h22_shopify",
        True,
        """
        SHOPIFY_STORE=kindred-paws-shop.myshopify.com
        SHOPIFY_ADMIN_TOKEN={V}
        SHOPIFY_API_VERSION=2024-07
        SUBSCRIPTION_DISCOUNT_PERCENT=10
        """,
    ),
    _t(
        "shop/magento-legacy/app/etc/env.php",
        "h22_pw",
        True,
        """
        <?php
        return [
            'backend' => ['frontName' => 'kp_admin_7731'],
                'db' => [
                'table_prefix' => '',
                'connection' => [
                    'default' => [
                        'host' => 'magento-db.kpvg.internal',
                        'dbname' => 'magento',
                        'username' => 'magento',
                        'password' => '{V}',
                        'active' => '1',
                    ],
                ],
            ],
            'MAGE_MODE' => 'production',
        ];
        """,
    ),
    _t(
        "shop/magento-legacy/dev/tests/integration/etc/install-config-mysql.php.dist",
        "h22_doc_pw",
        False,
        """
        <?php
        return [
            'db-host' => 'localhost',
            'db-user' => 'root',
            'db-password' => '{V}',
            'db-name' => 'magento_integration_tests',
            'admin-user' => 'user',
            'admin-password' => '{V2}',
        ];
        """,
    ),
    _t(
        "shop/storefront/src/checkout/algolia.ts",
        "h22_algolia",
        True,
        """
        import algoliasearch from "algoliasearch";

        // server-side indexer only: this is the ADMIN key, not the search-only key
        export const indexer = algoliasearch("KP7QZ2L0XA", "{V}");

        export async function reindexProducts(products: object[]) {
          await indexer.initIndex("products_gb").replaceAllObjects(products, { autoGenerateObjectIDIfNotExist: true });
        }
        """,
    ),
    _t(
        "shop/storefront/public/checkout.html",
        "h22_recaptcha_site",
        False,
        """
        <!doctype html>
        <html lang="en-GB">
        <head>
          <script src="https://js.stripe.com/v3/"></script>
          <script src="https://www.google.com/recaptcha/api.js" async defer></script>
        </head>
        <body>
          <form id="checkout" data-stripe-key-ref="window.KP_CONFIG.stripePublishableKey">
            <div class="g-recaptcha" data-sitekey="{V}"></div>
            <button type="submit">Pay now</button>
          </form>
        </body>
        </html>
        """,
    ),
    _t(
        "shop/storefront/package-lock.json",
        "h22_sri",
        False,
        """
        {
          "name": "kp-storefront",
          "lockfileVersion": 3,
          "packages": {
            "node_modules/algoliasearch": {
              "version": "4.24.0",
              "resolved": "https://registry.npmjs.org/algoliasearch/-/algoliasearch-4.24.0.tgz",
              "integrity": "{V}"
            },
            "node_modules/@stripe/stripe-js": {
              "version": "4.1.0",
              "integrity": "{V2}"
            }
          }
        }
        """,
    ),
    # ================================================================ loyalty programme (Rails)
    _t(
        "loyalty/config/database.ci.yml",
        "h22_ref_rb",
        False,
        """
        production:
          adapter: postgresql
          host: <%= ENV["DB_HOST"] %>
          database: loyalty_production
          username: loyalty
          password: <%= {V} %>
        """,
    ),
    _t(
        "loyalty/config/master.key",
        "h22_hex_secret",
        True,
        """
        {V}
        """,
    ),
    _t(
        "loyalty/config/initializers/redis.rb",
        "h22_url_pw",
        True,
        """
        REDIS_URL = "rediss://default:{V}@loyalty-cache.kpvg.internal:6380/0"
        Redis.current = Redis.new(url: REDIS_URL, ssl_params: { verify_mode: OpenSSL::SSL::VERIFY_PEER })
        """,
    ),
    _t(
        "loyalty/spec/fixtures/members.yml",
        "h22_hash",
        False,
        """
        alice:
          email: alice@example.com
          encrypted_password: "{V}"
          points_balance: 420
        bob:
          email: bob@example.com
          encrypted_password: "{V2}"
          points_balance: 15
        """,
    ),
    # ================================================================ call centre and marketing
    _t(
        "callcentre/ivr/twilio-flows/deploy_flow.py",
        "h22_twilio",
        True,
        """
        \"\"\"Pushes the out-of-hours emergency IVR flow to Twilio Studio.\"\"\"
        import json
        from twilio.rest import Client

        ACCOUNT_SID = "AC7d2e9f0a1b3c4d5e6f708192a3b4c5d6"
        AUTH_TOKEN = "{V}"

        client = Client(ACCOUNT_SID, AUTH_TOKEN)
        with open("flows/out_of_hours.json") as f:
            client.studio.v2.flows("FW3b9c7d1e2f4a5b6c7d8e9f0a1b2c3d4e").update(
                status="published", definition=json.load(f), commit_message="OOH triage v14"
            )
        """,
    ),
    _t(
        "callcentre/ivr/twilio-flows/README.md",
        "h22_ref_sh",
        False,
        """
        # Out-of-hours IVR

        Deploy with:

        ```sh
        export TWILIO_AUTH_TOKEN={V}
        python deploy_flow.py
        ```

        The auth token lives in 1Password (vault *Contact Centre*). Never paste it into the flow JSON.
        """,
    ),
    _t(
        "callcentre/zendesk-sync/sync.go",
        "h22_zendesk",
        True,
        """
        package main

        import (
        	"fmt"
        	"net/http"
        )

        const (
        	zendeskSubdomain = "kindredpaws"
        	zendeskEmail     = "integrations@kindredpaws.co.uk"
        	zendeskToken     = "{V}"
        )

        func newRequest(path string) (*http.Request, error) {
        	req, err := http.NewRequest("GET", fmt.Sprintf("https://%s.zendesk.com/api/v2/%s", zendeskSubdomain, path), nil)
        	if err != nil {
        		return nil, err
        	}
        	req.SetBasicAuth(zendeskEmail+"/token", zendeskToken)
        	return req, nil
        }
        """,
    ),
    _t(
        "callcentre/zendesk-sync/sync_test.go",
        "h22_fake",
        False,
        """
        package main

        import "testing"

        func TestBasicAuthUsesTokenSuffix(t *testing.T) {
        	t.Setenv("ZENDESK_TOKEN", "{V}")
        	req, _ := newRequest("tickets.json")
        	if _, _, ok := req.BasicAuth(); !ok {
        		t.Fatal("expected basic auth")
        	}
        }
        """,
    ),
    _t(
        "marketing/hubspot/import_contacts.py",
        "h22_hubspot",
        True,
        """
        import csv

        from hubspot import HubSpot

        api = HubSpot(access_token="{V}")

        with open("exports/new_clients.csv") as fh:
            for row in csv.DictReader(fh):
                api.crm.contacts.basic_api.create({"properties": {"email": row["email"], "firstname": row["first"], "clinic": row["clinic"]}})
        """,
    ),
    _t(
        "marketing/mailchimp/newsletter.js",
        "h22_mailchimp",
        True,
        """
        const mailchimp = require("@mailchimp/mailchimp_marketing");

        mailchimp.setConfig({
          apiKey: "{V}",
          server: "us21",
        });

        module.exports.addToNewsletter = (email) =>
          mailchimp.lists.addListMember("4f1a2b3c9d", { email_address: email, status: "pending" });
        """,
    ),
    _t(
        "marketing/sendgrid/templates/send_vaccine_reminders.py",
        "h22_sendgrid",
        True,
        """
        from sendgrid import SendGridAPIClient
        from sendgrid.helpers.mail import Mail

        sg = SendGridAPIClient("{V}")

        def send(to: str, pet: str, clinic: str) -> None:
            msg = Mail(from_email="reminders@kindredpaws.co.uk", to_emails=to)
            msg.template_id = "d-7c1b4e2f9a0d4c3e8b6f5a1d2e3c4b5a"
            msg.dynamic_template_data = {"pet": pet, "clinic": clinic}
            sg.send(msg)
        """,
    ),
    _t(
        "marketing/slack-bot/app.js",
        "h22_slack",
        True,
        """
        const { App } = require("@slack/bolt");

        // #clinic-wins bot: posts five-star reviews from Google and Trustpilot
        const app = new App({
          token: "{V}",
          signingSecret: process.env.SLACK_SIGNING_SECRET,
        });

        app.command("/review", async ({ ack, say }) => { await ack(); await say("Fetching latest reviews..."); });
        (async () => { await app.start(process.env.PORT || 3000); })();
        """,
    ),
    _t(
        "marketing/alerts/teams_notify.ps1",
        "h22_teams_hook",
        True,
        """
        # posts the daily booking numbers to the Marketing channel
        $Webhook = '{V}'
        $body = @{ text = "Online bookings yesterday: $((Import-Csv .\\bookings.csv).Count)" } | ConvertTo-Json
        Invoke-RestMethod -Uri $Webhook -Method Post -Body $body -ContentType 'application/json'
        """,
    ),
    _t(
        "marketing/alerts/slack_notify.sh",
        "h22_slack_hook",
        True,
        """
        #!/bin/sh
        HOOK="{V}"
        curl -s -X POST -H 'Content-type: application/json' \\
          --data "{\\"text\\": \\"Campaign $1 finished: $2 emails sent\\"}" "$HOOK"
        """,
    ),
    _t(
        "marketing/alerts/slack_notify.example.sh",
        "h22_doc_hook",
        False,
        """
        #!/bin/sh
        # example from the Slack docs; set SLACK_HOOK in the environment instead
        HOOK="${SLACK_HOOK:-{V}}"
        curl -s -X POST -H 'Content-type: application/json' --data '{"text":"hello"}' "$HOOK"
        """,
    ),
    _t(
        "marketing/reviews/discord_notify.py",
        "h22_discord_hook",
        True,
        """
        import requests

        # community server for the puppy-class owners
        WEBHOOK = "{V}"

        def announce(text: str) -> None:
            requests.post(WEBHOOK, json={"content": text}, timeout=5)
        """,
    ),
    _t(
        "marketing/ai/review_summariser.py",
        "h22_openai",
        True,
        """
        from openai import OpenAI

        client = OpenAI(api_key="{V}")

        def summarise(reviews: list[str]) -> str:
            resp = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "system", "content": "Summarise vet clinic reviews in 3 bullet points."},
                          {"role": "user", "content": "\\n".join(reviews)}],
            )
            return resp.choices[0].message.content
        """,
    ),
    # ================================================================ data warehouse
    _t(
        "dwh/dbt/profiles.yml",
        "h22_pw",
        True,
        """
        kindred_dwh:
          target: prod
          outputs:
            prod:
              type: snowflake
              account: kindredcover-uk
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
        "dwh/dbt/profiles.ci.yml",
        "h22_ref_dbt",
        False,
        """
        kindred_dwh:
          target: ci
          outputs:
            ci:
              type: snowflake
              account: kindredcover-uk
              user: DBT_CI
              password: "{V}"
              role: TRANSFORMER_CI
              database: ANALYTICS_CI
        """,
    ),
    _t(
        "dwh/dbt/profiles.keypair.yml",
        "h22_pkcs8",
        True,
        """
        kindred_dwh:
          target: prod
          outputs:
            prod:
              type: snowflake
              account: kindredcover-uk
              user: DBT_SERVICE
              private_key: |
                {IV}
              role: TRANSFORMER
              database: ANALYTICS
        """,
    ),
    _t(
        "dwh/snowflake/rsa_key.pub",
        "h22_pubkey",
        False,
        """
        {V}
        """,
    ),
    _t(
        "dwh/snowflake/setup/003_keypair_users.sql",
        "h22_jwks_n",
        False,
        """
        -- key-pair auth only; RSA_PUBLIC_KEY is the public half (modulus exported for the JWKS check)
        -- modulus of DBT_SERVICE, for cross-checking against the JWKS published by the auth service:
        -- n = {V}
        -- modulus of LOOKER_SVC:
        -- n = {V2}
        """,
    ),
    _t(
        "dwh/models/marts/claims/fct_claims.sql",
        "h22_policy",
        False,
        """
        {{ config(materialized='incremental', unique_key='claim_id') }}

        select
            c.claim_id,
            c.policy_number,
            c.amount_claimed_pence,
            p.species
        from {{ ref('stg_claims') }} c
        join {{ ref('stg_pets') }} p using (pet_id)
        -- excluded test policies, see DWH-311
        where c.policy_number not in ('{V}', '{V2}', '{V3}')
        """,
    ),
    _t(
        "dwh/notebooks/churn_analysis.ipynb",
        "h22_url_pw",
        True,
        """
        {
         "cells": [
          {
           "cell_type": "code",
           "execution_count": 2,
           "metadata": {},
           "outputs": [],
           "source": [
            "import pandas as pd\\n",
            "from sqlalchemy import create_engine\\n",
            "eng = create_engine(\\"postgresql+psycopg2://analyst:{V}@pg-replica.kpvg.internal:5432/pms\\")\\n",
            "df = pd.read_sql(\\"select * from policy_cancellations where cancelled_at > now() - interval '1 year'\\", eng)"
           ]
          },
          {
           "cell_type": "markdown",
           "metadata": {},
           "source": ["Churn is highest in month 13, after the first renewal price rise."]
          }
         ],
         "metadata": {},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
    ),
    _t(
        "dwh/fivetran/connectors.tf",
        "h22_ref_tf",
        False,
        """
        resource "fivetran_connector" "pms_sqlserver" {
          group_id = fivetran_group.dwh.id
          service  = "sql_server"
          config {
            host     = "sql-pms-prod.kpvg.local"
            port     = 1433
            user     = "fivetran_ro"
            password = {V}
            database = "VetPMS"
          }
        }
        """,
    ),
    # ================================================================ clinic IT
    _t(
        "clinic-it/unifi/site-backup/wlan.json",
        "h22_wifi_psk",
        True,
        """
        [
          { "name": "KP-Staff", "security": "wpapsk", "wpa_mode": "wpa2", "x_passphrase": "{V}", "vlan": 20 },
          { "name": "KP-Devices", "security": "wpapsk", "wpa_mode": "wpa2", "x_passphrase": "{V2}", "vlan": 30 },
          { "name": "KP-Guest", "security": "open", "is_guest": true, "vlan": 99 }
        ]
        """,
    ),
    _t(
        "clinic-it/unifi/site-backup/wlan.template.json",
        "h22_placeholder",
        False,
        """
        [
          { "name": "KP-Staff", "security": "wpapsk", "x_passphrase": "{V}", "vlan": 20 },
          { "name": "KP-Guest", "security": "open", "is_guest": true, "vlan": 99 }
        ]
        """,
    ),
    _t(
        "clinic-it/docs/new-clinic-checklist.md",
        "h22_wifi_psk",
        True,
        """
        # New clinic IT checklist

        1. Rack the UniFi gateway and the two U6 access points.
        2. Adopt them into the *Kindred Paws Clinics* site on the controller.
        3. Staff Wi-Fi is **KP-Staff**, the password is `{V}` (same in every clinic, we know).
        4. Card terminals join **KP-Devices** with `{V2}`.
        5. Print the guest Wi-Fi poster (no password, captive portal).
        """,
    ),
    _t(
        "clinic-it/docs/printer-setup.md",
        "h22_ui_text",
        False,
        """
        # Reception printers (Brother HL-L6210DW)

        Web admin at `https://<printer-ip>/`. Its login page says "{V}" — the admin password is
        the one printed on the sticker on the back of each printer; record it in the clinic IT sheet in
        1Password, not here.
        """,
    ),
    _t(
        "clinic-it/ansible/group_vars/clinics/vars.yml",
        "h22_snmp",
        True,
        """
        ntp_servers: [0.uk.pool.ntp.org, 1.uk.pool.ntp.org]
        snmp_location: "Kindred Paws clinic"
        snmp_ro_community: {V}
        snmp_v3_user: kpmon
        snmp_v3_auth_pass: {V2}
        syslog_host: 10.0.8.15
        """,
    ),
    _t(
        "clinic-it/ansible/group_vars/clinics/vault.yml",
        "h22_ansible_vault",
        False,
        """
        snmp_ro_community: {IV}
        nas_admin_password: {IV2}
        """,
    ),
    _t(
        "clinic-it/ansible/roles/nas/tasks/main.yml",
        "h22_ref_ansible",
        False,
        """
        - name: Mount the clinic NAS backup share
          ansible.posix.mount:
            path: /mnt/backup
            src: //nas01/pms-backup
            fstype: cifs
            opts: "username=clinicbackup,password={V},vers=3.0"
            state: mounted
        """,
    ),
    _t(
        "clinic-it/nas/hyper-backup-offsite.sh",
        "h22_aws_secret",
        True,
        """
        #!/bin/sh
        # Synology: push the nightly PMS dump to the Wasabi bucket (rclone is installed via Docker)
        RCLONE_CONFIG_WASABI_TYPE=s3
        RCLONE_CONFIG_WASABI_PROVIDER=Wasabi
        RCLONE_CONFIG_WASABI_ACCESS_KEY_ID="$(cat /volume1/homes/backup/.wasabi_id)"
        RCLONE_CONFIG_WASABI_SECRET_ACCESS_KEY='{V}'
        export RCLONE_CONFIG_WASABI_TYPE RCLONE_CONFIG_WASABI_PROVIDER RCLONE_CONFIG_WASABI_ACCESS_KEY_ID RCLONE_CONFIG_WASABI_SECRET_ACCESS_KEY
        rclone sync /volume1/pms-backup wasabi:kpvg-pms-offsite --transfers 4
        """,
    ),
    _t(
        "clinic-it/nas/rclone.conf",
        "h22_sops",
        False,
        """
        [wasabi]
        type = s3
        provider = Wasabi
        access_key_id = {V}
        secret_access_key = {V2}
        endpoint = s3.eu-west-2.wasabisys.com
        """,
    ),
    _t(
        "clinic-it/putty/clinic-jump.ppk",
        "h22_ppk",
        True,
        """
        {V}
        """,
    ),
    _t(
        "clinic-it/scanners/scan-to-folder.cmd",
        "h22_weak_pw",
        True,
        """
        @echo off
        REM maps the scan share for the reception MFP (Kyocera) on each clinic PC
        net use S: \\\\CLINIC-SRV01\\Scans /user:CLINIC-SRV01\\scanner {V} /persistent:yes
        net use P: \\\\nas01\\policies /user:KPVG\\frontdesk {V2} /persistent:yes
        """,
    ),
    _t(
        "clinic-it/monitoring/prtg/devices.csv",
        "h22_redacted",
        False,
        """
        clinic,device,ip,snmp_community,wmi_user,wmi_password
        LDS-04,CLINIC-SRV01,10.40.4.10,{V},KPVG\\svc-prtg,{V2}
        YRK-02,CLINIC-SRV01,10.41.2.10,{V},KPVG\\svc-prtg,{V2}
        """,
    ),
    # ================================================================ infrastructure: k8s, Helm, Terraform
    _t(
        "infra/k8s/claims/secret.yaml",
        "h22_pw_b64",
        True,
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: claims-db
          namespace: claims
        type: Opaque
        data:
          username: Y2xhaW1zX2FwcA==
          password: {V}
        """,
    ),
    _t(
        "infra/k8s/claims/sealedsecret.yaml",
        "h22_sealed",
        False,
        """
        apiVersion: bitnami.com/v1alpha1
        kind: SealedSecret
        metadata:
          name: claims-db
          namespace: claims
        spec:
          encryptedData:
            password: {V}
            kafka-password: {V2}
        """,
    ),
    _t(
        "infra/helm/booking-api/values-prod.yaml",
        "h22_url_pw",
        True,
        """
        image:
          repository: kpvgacr.azurecr.io/booking-api
          tag: 3.14.0
        env:
          DATABASE_URL: "postgresql://booking:{V}@booking-db.kpvg.internal:5432/booking?sslmode=require"
          REDIS_URL: "rediss://:{V2}@booking-cache.kpvg.internal:6380"
        ingress:
          host: api.kindredpaws.co.uk
        """,
    ),
    _t(
        "infra/helm/booking-api/values.yaml",
        "h22_ref_helm",
        False,
        """
        image:
          repository: kpvgacr.azurecr.io/booking-api
        env:
          DATABASE_PASSWORD: "{V}"
        externalSecrets:
          enabled: true
          store: azure-kv-prod
          keys: [booking-db-password, booking-redis-password]
        """,
    ),
    _t(
        "infra/helm/booking-api/secrets.enc.yaml",
        "h22_sops",
        False,
        """
        databasePassword: {V}
        redisPassword: {V2}
        sops:
          azure_kv:
            - vault_url: https://kv-kpvg-prod.vault.azure.net
              name: sops-key
              version: 1d3c5e7f9a0b2c4d6e8f0a1b3c5d7e9f
          lastmodified: "2024-06-02T09:14:11Z"
          mac: ENC[AES256_GCM,data:Zm9vYmFy,iv:AAAAAAAAAAAAAAAAAAAAAA==,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]
          version: 3.8.1
        """,
    ),
    _t(
        "infra/terraform/azure/pms/main.tf",
        "h22_pw",
        True,
        """
        resource "azurerm_mssql_server" "pms" {
          name                         = "sql-kpvg-pms-uks"
          resource_group_name          = azurerm_resource_group.pms.name
          location                     = "uksouth"
          version                      = "12.0"
          administrator_login          = "kpvgsqladmin"
          administrator_login_password = "{V}"
          minimum_tls_version          = "1.2"
        }
        """,
    ),
    _t(
        "infra/terraform/azure/pms/variables.tf",
        "h22_ref_tf",
        False,
        """
        variable "sql_admin_password" {
          type      = string
          sensitive = true
        }

        locals {
          sql_admin_password = {V}
        }
        """,
    ),
    _t(
        "infra/terraform/azure/.terraform.lock.hcl",
        "h22_tf_lock",
        False,
        """
        provider "registry.terraform.io/hashicorp/azurerm" {
          version     = "3.110.0"
          constraints = "~> 3.100"
          hashes = [
            "{V}",
            "{V2}",
          ]
        }
        """,
    ),
    _t(
        "infra/terraform/aws/backup/providers.tf",
        "h22_aws_secret",
        True,
        """
        provider "aws" {
          region     = "eu-west-2"
          access_key = var.backup_access_key_id
          secret_key = "{V}"
        }
        """,
    ),
    _t(
        "infra/terraform/.terraformrc",
        "h22_tfc",
        True,
        """
        credentials "app.terraform.io" {
          token = "{V}"
        }
        """,
    ),
    _t(
        "infra/terraform/gcp/booking-maps/sa-key.json",
        "h22_gcp_key",
        True,
        """
        {
          "type": "service_account",
          "project_id": "kindred-paws-booking",
          "private_key_id": "5c2e9a1f7b3d4c8e0f6a2b9d1c7e3f5a8b0d4c62",
          "private_key": "{V}",
          "client_email": "maps-proxy@kindred-paws-booking.iam.gserviceaccount.com",
          "client_id": "109448372615503928471",
          "token_uri": "https://oauth2.googleapis.com/token"
        }
        """,
    ),
    _t(
        "infra/vault/policies/README.md",
        "h22_vault",
        True,
        """
        # Vault policies

        Apply with `vault policy write claims policies/claims.hcl`.

        Bootstrap note (2024-02-19): the initial root token was `{V}`; it is still in use by the
        Jenkins seed job until INFRA-920 is done.
        """,
    ),
    _t(
        "infra/age/keys.txt",
        "h22_age",
        True,
        """
        # created: 2024-04-02T10:11:12Z
        # public key: age1x7kq2s9d8vpwn3rf0yl4h6tzcmueg5ja2p7sn9wq3xr8dlv4f0khz6cm
        {V}
        """,
    ),
    # ================================================================ CI, Docker
    _t(
        ".github/workflows/booking-web.yml",
        "h22_ref_ci",
        False,
        """
        name: booking-web
        on: [push]
        jobs:
          deploy:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - run: npm ci && npm run build
                env:
                  STRIPE_SECRET_KEY: {V}
                  NPM_TOKEN: {V2}
        """,
    ),
    _t(
        ".github/workflows/claims-api.yml",
        "h22_github",
        True,
        """
        name: claims-api
        on: [push]
        jobs:
          test:
            runs-on: ubuntu-latest
            env:
              # private vetsoft-sdk repo; fine-grained token expired, this classic one works for now
              GH_PACKAGES_TOKEN: {V}
            steps:
              - uses: actions/checkout@v4
              - run: pip install --extra-index-url https://x-access-token:$GH_PACKAGES_TOKEN@pip.kindredpaws.dev/simple -r requirements.txt
              - run: pytest -q
        """,
    ),
    _t(
        ".gitlab-ci.yml",
        "h22_gitlab",
        True,
        """
        stages: [build, deploy]
        variables:
          HELM_CHART_REPO_TOKEN: "{V}"
        build:
          stage: build
          script:
            - docker build -t $CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA .
        deploy:
          stage: deploy
          script:
            - helm repo add kpvg https://gitlab.kpvg.dev/api/v4/projects/42/packages/helm/stable --username ci --password "$HELM_CHART_REPO_TOKEN"
        """,
    ),
    _t(
        "azure-pipelines.yml",
        "h22_ref_ci",
        False,
        """
        trigger: [main]
        pool: { vmImage: windows-latest }
        variables:
          - group: pms-prod-secrets
        steps:
          - task: DotNetCoreCLI@2
            inputs: { command: publish, projects: "pms/src/Kpvg.Pms.Api/*.csproj" }
          - powershell: ./deploy.ps1 -SqlPassword "{V}" -RegistryPassword "{V2}"
        """,
    ),
    _t(
        "bitbucket-pipelines.yml",
        "h22_bitbucket",
        True,
        """
        image: node:20
        pipelines:
          default:
            - step:
                name: Publish contractor build
                script:
                  - git clone https://kpvg-ci:{V}@bitbucket.org/vetsoft-contractors/kp-pms-plugins.git
                  - cd kp-pms-plugins && npm ci && npm run build
        """,
    ),
    _t(
        "shop/storefront/.npmrc",
        "h22_npm",
        True,
        """
        @kindredpaws:registry=https://registry.npmjs.org/
        //registry.npmjs.org/:_authToken={V}
        engine-strict=true
        """,
    ),
    _t(
        "booking-web/.npmrc",
        "h22_ref_npmrc",
        False,
        """
        @kindredpaws:registry=https://registry.npmjs.org/
        //registry.npmjs.org/:_authToken={V}
        """,
    ),
    _t(
        "claims/claims-api/Dockerfile",
        "h22_image_digest",
        False,
        """
        FROM python:3.12-slim@{V}
        ARG PIP_INDEX_URL
        WORKDIR /app
        COPY requirements.txt .
        RUN pip install --no-cache-dir -r requirements.txt
        COPY src/ ./src
        # build provenance
        ARG GIT_SHA
        LABEL org.opencontainers.image.revision="${GIT_SHA}"
        CMD ["gunicorn", "src.wsgi:application", "-b", "0.0.0.0:8000"]
        """,
    ),
    _t(
        "lab-integrations/poller/Dockerfile",
        "h22_pw",
        True,
        """
        FROM golang:1.22 AS build
        WORKDIR /src
        COPY . .
        RUN go build -o /poller ./cmd/poller

        FROM gcr.io/distroless/base-debian12
        COPY --from=build /poller /poller
        ENV PMS_URL=https://api.kindredpaws.co.uk/pms/v2 \\
            LAB_DB_PASSWORD={V}
        ENTRYPOINT ["/poller"]
        """,
    ),
    _t(
        "infra/docker/config.json",
        "h22_basic_b64",
        True,
        """
        {
          "auths": {
            "kpvgacr.azurecr.io": { "auth": "{V}" },
            "https://index.docker.io/v1/": { "auth": "{V2}" }
          }
        }
        """,
    ),
    _t(
        "infra/docker/login.sh",
        "h22_docker",
        True,
        """
        #!/bin/sh
        # CI runners on the contractor's VM pull our private base images
        echo "{V}" | docker login -u kpvgci --password-stdin
        docker pull kpvg/base-python:3.12
        """,
    ),
    # ================================================================ docs, runbooks, tickets, chat, logs
    _t(
        "docs/runbooks/pacs-outage.md",
        "h22_pw",
        True,
        """
        # Runbook: PACS north is down

        1. Check `systemctl status orthanc` on `pacs-north.kpvg.local`.
        2. If the index DB is the problem, connect with `psql -h pg-pacs -U orthanc`; the password
           is {V} (break-glass copy, the real one rotates via Vault).
        3. Radiology can still view studies through the teleradiology portal; their fallback login
           is `kpvg-radiology` / `{V2}`.
        4. Page the imaging on-call if not back within 30 minutes.
        """,
    ),
    _t(
        "docs/runbooks/rotate-sql-passwords.md",
        "h22_ref_sh",
        False,
        """
        # Rotating the PMS SQL passwords

        ```bash
        NEW_PW={V}
        sqlcmd -S sql-pms-prod.kpvg.local -U kpvgsqladmin -P {V2} \\
          -Q "ALTER LOGIN [pms_app] WITH PASSWORD = '$NEW_PW'"
        ```

        Passwords must be at least 16 characters. Never paste them into tickets or Teams.
        """,
    ),
    _t(
        "docs/handover/contractor-handover-vetsoft.md",
        "h22_atlassian",
        True,
        """
        # Handover from VetSoft Contractors Ltd (PMS plugins), June 2024

        - Jira automation user: `vetsoft-bot@kindredpaws.co.uk`, API token `{V}`
          (please revoke once you have your own integration user).
        - Bitbucket mirror: see bitbucket-pipelines.yml.
        - Outstanding: lab result attachments over 10 MB fail silently (PLUG-118).
        """,
    ),
    _t(
        "docs/handover/agency-handover-shop.md",
        "h22_redacted",
        False,
        """
        # Shop agency handover (Pawprint Digital), March 2024

        | System | Login | Password |
        |---|---|---|
        | Shopify admin | agency@pawprint.example | {V} |
        | Klaviyo | agency@pawprint.example | {V2} |
        | Magento (legacy) | kp_admin | {V3} |

        All passwords were moved to the shared 1Password vault *Shop Agency*; rotate after the agency leaves.
        """,
    ),
    _t(
        "docs/tickets/IT-5122.md",
        "h22_weak_pw",
        True,
        """
        **IT-5122** Harrogate clinic: reception PC cannot reach NAS

        *Reporter:* Practice manager, HGT-01
        *Status:* Resolved

        > Remote session: the mapped drive was using the old share account. Re-mapped with
        > `clinicbackup` / `{V}` and rebooted. Also reset the local admin on HGT-RECEP01 to `{V2}`
        > so the practice manager can install the label printer driver.
        """,
    ),
    _t(
        "docs/tickets/SEC-214.md",
        "h22_redacted",
        False,
        """
        **SEC-214** Leaked Stripe key in booking-web history

        The key `{V}` was committed in 2023 and has been rolled. The new key is stored in Vercel and in
        1Password; GitHub secret scanning alert closed as *revoked*. Password for the finance
        dashboard shared in the original thread: {V2}
        """,
    ),
    _t(
        "docs/chat/it-helpdesk-2024-05.json",
        "h22_pw",
        True,
        """
        [
          {"ts": "2024-05-14T08:02:11Z", "user": "sam.k", "text": "Morning, York PMS says login failed for pms_sync"},
          {"ts": "2024-05-14T08:05:40Z", "user": "it.oncall", "text": "it was rotated last night, new one is {V}"},
          {"ts": "2024-05-14T08:06:02Z", "user": "sam.k", "text": "thanks! what about the lab import account?"},
          {"ts": "2024-05-14T08:07:19Z", "user": "it.oncall", "text": "lab_import password: {V2} - please delete these messages after"}
        ]
        """,
    ),
    _t(
        "docs/chat/dev-claims-2024-06.txt",
        "h22_ui_text",
        False,
        """
        [09:12] priya: the claims portal says "{V}" for everyone since the deploy
        [09:13] mo: yeah the password reset email template lost its link, fixing
        [09:20] mo: fixed, error copy now reads "{V2}"
        [09:21] priya: 👍
        """,
    ),
    _t(
        "logs/booking-api/2024-06-11.log",
        "h22_jwt",
        True,
        """
        2024-06-11T10:14:02.118Z INFO  booking-api request_id=4c9f1e2a method=GET path=/v1/clinics/LDS-04/slots status=200 ms=41
        2024-06-11T10:14:05.602Z DEBUG booking-api outgoing PMS call headers={"Authorization": "Bearer {V}", "Accept": "application/json"}
        2024-06-11T10:14:05.711Z INFO  booking-api request_id=8a2b7d10 method=POST path=/v1/appointments status=201 ms=109
        """,
    ),
    _t(
        "logs/booking-api/2024-06-12.log",
        "h22_redacted",
        False,
        """
        2024-06-12T10:14:05.602Z DEBUG booking-api outgoing PMS call headers={"Authorization": "Bearer {V}", "Accept": "application/json"}
        2024-06-12T10:15:44.011Z WARN  booking-api login failed user=owner@example.com reason=bad_password password={V2}
        """,
    ),
    _t(
        "logs/claims-worker/ocr-errors.log",
        "h22_dicom_uid",
        False,
        """
        2024-06-03 02:11:17 ERROR ocr.InvoiceOcrClient failed to parse attachment uid={V} claim=CLM-2024-118832
        2024-06-03 02:11:18 ERROR ocr.InvoiceOcrClient failed to parse attachment uid={V2} claim=CLM-2024-118840
        """,
    ),
    _t(
        "docs/developer/local-setup.html",
        "h22_doc_pw",
        False,
        """
        <h2>Local database</h2>
        <p>Start Postgres with <code>docker run -e POSTGRES_PASSWORD={V} -p 5432:5432 postgres:16</code>
        and point the app at <code>postgresql://postgres:{V}@localhost:5432/booking</code>.</p>
        <p>The seeded admin user is <code>admin@example.com</code> with password <code>{V2}</code>; it
        only exists in the local seed data.</p>
        """,
    ),
    _t(
        "docs/developer/api-auth.md",
        "h22_doc_aws",
        False,
        """
        # Calling the claims API from scripts

        Use the AWS CLI profile from the docs examples, e.g.

        ```ini
        [claims-dev]
        {V}
        ```

        Real keys are issued by the platform team through SSO; do not create IAM users.
        """,
    ),
    _t(
        "contractors/vetsoft/kp-pms-plugins/src/config/defaults.js",
        "h22_okta",
        True,
        """
        // VetSoft plugin host: Okta service app used to call the PMS admin API
        module.exports = {
          oktaDomain: "https://kindredpaws.okta-emea.com",
          apiToken: "{V}",
          pluginDir: "./plugins",
        };
        """,
    ),
    _t(
        "contractors/vetsoft/kp-pms-plugins/.env.sample",
        "h22_placeholder",
        False,
        """
        OKTA_DOMAIN=https://kindredpaws.okta-emea.com
        OKTA_API_TOKEN={V}
        PMS_ADMIN_URL=https://pms-admin.kpvg.local
        """,
    ),
    _t(
        "contractors/pawprint-digital/deploy/id_rsa",
        "h22_rsa",
        True,
        """
        {V}
        """,
    ),
    _t(
        "contractors/pawprint-digital/deploy/server.crt",
        "h22_cert",
        False,
        """
        {V}
        """,
    ),
    _t(
        "contractors/pawprint-digital/deploy/server.key",
        "h22_enc_key",
        False,
        """
        {V}
        """,
    ),
    _t(
        "payments/apple-pay/merchant_id.key",
        "h22_ec",
        True,
        """
        {V}
        """,
    ),
    _t(
        "monitoring/newrelic/newrelic.yml",
        "h22_newrelic",
        True,
        """
        common: &default_settings
          license_key: '{V}'
          app_name: KindredCover Claims API
          distributed_tracing:
            enabled: true
        production:
          <<: *default_settings
        """,
    ),
    _t(
        "monitoring/datadog/datadog.yaml",
        "h22_datadog",
        True,
        """
        api_key: {V}
        site: datadoghq.eu
        hostname: pacs-north
        tags:
          - env:prod
          - team:imaging
        logs_enabled: true
        """,
    ),
    _t(
        "monitoring/auth/jwks.json",
        "h22_jwks_n",
        False,
        """
        {
          "keys": [
            { "kty": "RSA", "use": "sig", "alg": "RS256", "kid": "kpvg-2024-05", "e": "AQAB", "n": "{V}" },
            { "kty": "RSA", "use": "sig", "alg": "RS256", "kid": "kpvg-2023-11", "e": "AQAB", "n": "{V2}" }
          ]
        }
        """,
    ),
    _t(
        "marketing/maps/geocode_clinics.py",
        "h22_mapbox_sk",
        True,
        """
        import requests

        # secret token with styles:write, used to publish the clinic finder tileset
        MAPBOX_TOKEN = "{V}"

        def upload_tileset(path: str) -> None:
            requests.post(f"https://api.mapbox.com/uploads/v1/kindredpaws?access_token={MAPBOX_TOKEN}", json={"url": path}, timeout=30)
        """,
    ),
    _t(
        "dwh/ml/pet-breed-classifier/publish.py",
        "h22_pypi",
        True,
        """
        \"\"\"Publishes the breed-classifier helper package to PyPI (it is open source).\"\"\"
        import subprocess

        TWINE_PASSWORD = "{V}"
        subprocess.run(["twine", "upload", "-u", "__token__", "-p", TWINE_PASSWORD, "dist/*"], check=True)
        """,
    ),
    _t(
        "shop/laravel/app/Mail/OrderShipped.php",
        "h22_ses_smtp",
        True,
        """
        <?php
        // TODO: move to .env - temporary while SES is being verified for shop.kindredpaws.co.uk
        config([
            'mail.mailers.ses_smtp.host' => 'email-smtp.eu-west-2.amazonaws.com',
            'mail.mailers.ses_smtp.username' => env('SES_SMTP_USER'),
            'mail.mailers.ses_smtp.password' => '{V}',
        ]);
        """,
    ),
    _t(
        "booking-web/src/lib/__fixtures__/users.ts",
        "h22_microchip",
        False,
        """
        export const pets = [
          { name: "Biscuit", species: "dog", microchip: "{V}" },
          { name: "Mochi", species: "cat", microchip: "{V2}" },
        ];
        """,
    ),
    _t(
        "booking-mobile/android/app/src/main/res/values/strings.xml",
        "h22_ui_text",
        False,
        """
        <resources>
            <string name="app_name">Kindred Paws</string>
            <string name="password_hint">{V}</string>
            <string name="password_error">{V2}</string>
            <string name="forgot_password">{V3}</string>
        </resources>
        """,
    ),
    _t(
        "lab-integrations/poller/internal/vetlabs/client_test.go",
        "h22_fake",
        False,
        """
        package vetlabs

        import "testing"

        func TestAuthHeader(t *testing.T) {
        	c := &Client{apiKey: "{V}"}
        	r := newReq(t)
        	c.auth(r)
        	if got := r.Header.Get("X-Api-Key"); got != "{V}" {
        		t.Fatalf("got %q", got)
        	}
        }
        """,
    ),
    _t(
        "callcentre/cti/softphone.ini",
        "h22_kms",
        False,
        """
        [SIP]
        Registrar=sip.kpvg-telephony.co.uk
        Username=kp-callcentre-014
        ; password encrypted with the call-centre KMS key, decrypted by the CTI agent at start-up
        PasswordCiphertext={V}
        """,
    ),
    _t(
        "claims/claims-worker/src/main/resources/application-onprem.properties",
        "h22_jasypt",
        False,
        """
        spring.datasource.url=jdbc:postgresql://claims-db.kpvg.internal:5432/claims
        spring.datasource.username=claims_app
        spring.datasource.password={V}
        spring.kafka.properties.sasl.password={V2}
        jasypt.encryptor.password=${JASYPT_ENCRYPTOR_PASSWORD}
        """,
    ),
    _t(
        "booking-mobile/app.config.ts",
        "h22_sentry_dsn",
        False,
        """
        import type { ExpoConfig } from "expo/config";

        // DSNs are public by design: they only allow sending events, not reading them
        const config: ExpoConfig = {
          name: "Kindred Paws",
          slug: "kindred-paws-booking",
          extra: {
            sentryDsn: "{V}",
            sentryDsnStaging: "{V2}",
            bookingApiUrl: "https://api.kindredpaws.co.uk/booking/v1",
          },
        };

        export default config;
        """,
    ),
]
