"""Blind part ``heldout24``: Brandvoort Logistics Group (BVL), a freight forwarder and customs
broker headquartered in Venlo (NL) with branches in Duisburg (DE) and Poznań (PL), and its
warehouse-robotics arm Brandvoort Robotics (an AMR fleet and conveyor lines in the cross-dock
warehouses). Files are the shipment tracking portal and API (Django, Go, Node/TypeScript), EDI
gateways (Spring Boot and Go services, X12 interchanges with ISA security fields, EDIFACT UNB
headers with recipient passwords, OpenAS2 configs and partner profiles), customs filing
integrations (German ATLAS, Dutch AGS/DMS, Polish PUESC, UK CDS, US ACE/ABI), the warehouse
management system (Java properties, SQL Server), the robot fleet (ROS 2 parameter files and
launch files, SROS2 keystores, C++ controllers, PLC/OPC UA exports, wpa_supplicant on the
robots), the carrier-rate marketplace (Next.js/TypeScript, Stripe, carrier APIs, a legacy PHP
quote tool, a Ruby scraper), driver mobile apps (React Native, Android Gradle and manifests,
iOS/fastlane, FCM push), telematics (Geotab, Webfleet, Samsara, Mosquitto bridges, a Rust edge
agent, Kafka/Confluent), finance and ERP (SAP RFC bridges, Dynamics 365 and Business Central,
PowerShell exports, C# invoice matching, bank SFTP pulls), partner SFTP drops (FileZilla,
WinSCP, lftp, keys and known_hosts), the data warehouse (dbt, Airflow, Snowflake, Databricks,
notebooks), on-call runbooks in English, German, Dutch and Polish, Jira incident tickets and
Slack chat exports, CI (GitHub Actions, GitLab CI, Jenkins) and infrastructure (Terraform, AWS,
Azure, GCP, Kubernetes, Helm, Ansible, Vault, Redis, RabbitMQ, Keycloak, Grafana, nginx).
Written blind (without seeing the scanner, its rules or other parts' templates).

Look-alikes sit in the same kinds of files under the same key names: password hashes (bcrypt,
SAP ``{x-issha, 1024}``, SQL Server ``0x0200``, SCRAM, Mosquitto ``$7$``, apr1, RabbitMQ
hashes, Redis ACL digests), values encrypted at rest (Jasypt ``ENC(...)``, Spring
``{cipher}``, SOPS, sealed secrets, Ansible Vault, Jenkins, AWS KMS blobs, DPAPI config
sections, encrypted PEM keys), references to environment variables and secret stores in each
language and tool, placeholders and redactions in four languages, public material
(certificates, public keys, SSH host keys and fingerprints, Mapbox ``pk.`` tokens, Stripe
publishable keys, VAPID public keys), identifiers shaped like secrets (container numbers with
ISO 6346 check digits, air waybills, SSCCs, GLNs, EORI numbers and customs MRNs, UPS tracking
numbers, VINs, IMEIs, X12/EDIFACT control numbers, ROS message md5sums, image digests, lockfile
integrity hashes, PagerDuty and Datadog ids), UI text about passwords in German, Dutch, Polish
and English, documented example credentials on documentation hosts, and test values that say
they are fake.
"""

from __future__ import annotations

import base64
import hashlib
import json
import string
import textwrap
import uuid
import zlib
from urllib.parse import quote

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
PW_SYMBOLS = "!#%*-_=+.@"
CRYPT64 = "./" + ALNUM
VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
ISO6346 = dict(
    zip(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        (
            10,
            12,
            13,
            14,
            15,
            16,
            17,
            18,
            19,
            20,
            21,
            23,
            24,
            25,
            26,
            27,
            28,
            29,
            30,
            31,
            32,
            34,
            35,
            36,
            37,
            38,
        ),
        strict=True,
    )
)


class Heldout24Values(evalset.Values):
    """Value generators of the heldout24 part; every name starts with ``h24_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "container",
            "palette",
            "zollamt",
            "havenkraan",
            "vrachtwagen",
            "magazyn",
            "spedycja",
            "lagerhalle",
            "stapler",
            "douane",
            "kontener",
            "laadperron",
            "frachtbrief",
            "sleepboot",
            "rampa",
        ]
        self.users = [
            "edi_gw",
            "customs_svc",
            "wms_app",
            "fleet_ctl",
            "rates_api",
            "driver_app",
            "telematics",
            "sap_rfc",
            "dwh_loader",
            "sftp_partner",
            "oncall",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def h24_util_b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        text = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
        return text if pad else text.rstrip("=")

    def h24_util_crc_token(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def h24_util_armor(self, label: str, der: bytes, width: int = 64) -> str:
        body = base64.b64encode(der).decode()
        rows = [body[i : i + width] for i in range(0, len(body), width)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def h24_util_rsa_der(self) -> bytes:
        return bytes.fromhex("308204a40201000282010100") + self.rng.randbytes(1180)

    def h24_util_aws_id(self) -> str:
        return self.pick(["AKIA", "AKIA", "ASIA"]) + self.s(16, string.ascii_uppercase + "234567")

    def h24_util_aws_secret(self) -> str:
        return self.s(40, ALNUM + "/+")

    def h24_util_luhn(self, digits: str) -> str:
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch)
            if i % 2 == 0:
                d *= 2
                if d > 9:
                    d -= 9
            total += d
        return str((10 - total % 10) % 10)

    def h24_util_gs1(self, digits: str) -> str:
        total = sum(int(ch) * (3 if i % 2 == 0 else 1) for i, ch in enumerate(reversed(digits)))
        return str((10 - total % 10) % 10)

    # ------------------------------------------------------------------ positives: passwords
    def h24_pw(self) -> str:
        shape = self.rng.randrange(7)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*.+"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(13, 21), ALNUM + PW_SYMBOLS
            )
        if shape == 2:
            city = self.pick(["Venlo", "Duisburg", "Poznan", "Tilburg", "Gdansk", "Moerdijk"])
            return f"{word.capitalize()}#{city}{self.s(2, DIGITS)}"
        if shape == 3:
            return "Bvl" + self.s(12, ALNUM) + self.pick(list("!#%"))
        if shape == 4:
            return self.s(18, ALNUM)
        if shape == 5:
            other = self.pick([w for w in self.words if w != word])
            return f"{word}-{other}-{self.s(2, DIGITS)}"
        leet = word.replace("a", "@").replace("o", "0").replace("e", "3")
        return leet[0].upper() + leet[1:] + "!" + self.s(4, DIGITS)

    def h24_weak_pw(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(
                [
                    "Welkom01",
                    "Passwort1!",
                    "Haslo123!",
                    "Brandvoort1",
                    "Spedition2024",
                    "admin1234",
                    "Start123!",
                    "Venlo2024",
                    "Magazyn1",
                ]
            )
        if shape == 1:
            return "Brandvoort" + str(self.rng.randrange(2016, 2026)) + self.pick(["", "!", "#"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2024", "!"])
        return self.pick(["Sommer", "Winter", "Zomer", "Lato", "Herbst"]) + str(
            self.rng.randrange(2019, 2026)
        )

    def h24_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(5, DIGITS)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(14, 22), ALNUM + "-_.")

    def h24_sap_pw(self) -> str:
        if self.rng.randrange(2):
            return self.s(1, string.ascii_uppercase) + self.s(7, UPNUM)
        return self.s(1, string.ascii_uppercase) + self.s(self.rng.randrange(11, 17), ALNUM + "#!")

    def h24_isa_pw(self) -> str:
        return self.s(1, string.ascii_uppercase) + self.s(9, UPNUM)

    def h24_unb_pw(self) -> str:
        return self.s(1, string.ascii_uppercase) + self.s(self.rng.randrange(7, 13), UPNUM)

    def h24_plc_pw(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return "Robo#" + self.s(5, DIGITS)
        if shape == 1:
            return self.s(10, ALNUM)
        return (
            self.pick(["Line", "Conv", "Amr", "Sorter"]) + self.s(4, DIGITS) + self.pick(["!", "$"])
        )

    def h24_keystore_pw(self) -> str:
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(15, 24), ALNUM + "!#%-_")

    def h24_b64_pw(self) -> str:
        return base64.b64encode(self.h24_pw().encode()).decode()

    def h24_basic_b64(self) -> str:
        user = self.pick([*self.users, "bvl-integration", "svc_bc365"])
        return base64.b64encode(f"{user}:{self.h24_pw()}".encode()).decode()

    # ------------------------------------------------------------------ positives: tokens
    def h24_opaque_key(self) -> str:
        return self.pick([self.s(32, ALNUM), self.s(40, ALNUM), self.s(28, URLSAFE)])

    def h24_uuid_secret(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def h24_github(self) -> str:
        return self.h24_util_crc_token(self.pick(["ghp", "ghp", "ghp", "gho"]))

    def h24_npm(self) -> str:
        return self.h24_util_crc_token("npm")

    def h24_gitlab(self) -> str:
        return "glpat-" + self.s(20, URLSAFE)

    def h24_slack_bot(self) -> str:
        return f"xoxb-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-{self.s(24, ALNUM)}"

    def h24_slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(8, UPNUM)}/B{self.s(10, UPNUM)}/"
            f"{self.s(24, ALNUM)}"
        )

    def h24_teams_webhook(self) -> str:
        ids = [str(uuid.UUID(int=self.rng.getrandbits(128), version=4)) for _ in range(3)]
        return (
            f"https://brandvoort.webhook.office.com/webhookb2/{ids[0]}@{ids[1]}/IncomingWebhook/"
            f"{self.s(32, HEX)}/{ids[2]}"
        )

    def h24_aws_pair_ini(self) -> str:
        return (
            f"aws_access_key_id = {self.h24_util_aws_id()}\n"
            f"aws_secret_access_key = {self.h24_util_aws_secret()}"
        )

    def h24_aws_pair_tf(self) -> str:
        return (
            f'access_key = "{self.h24_util_aws_id()}"\n'
            f'  secret_key = "{self.h24_util_aws_secret()}"'
        )

    def h24_azure_secret(self) -> str:
        return self.s(3, ALNUM) + self.s(1, DIGITS) + "Q~" + self.s(34, ALNUM + "_~.-")

    def h24_azure_storage(self) -> str:
        return self.h24_util_b64(64)

    def h24_sas_url(self) -> str:
        sig = quote(self.h24_util_b64(32), safe="")
        return (
            "https://bvlpodstore.blob.core.windows.net/proof-of-delivery?sv=2022-11-02&ss=b&srt=co"
            f"&sp=rwlac&se=2026-12-31T23:59:59Z&st=2024-01-01T00:00:00Z&spr=https&sig={sig}"
        )

    def h24_google_api(self) -> str:
        return "AIza" + self.s(35, URLSAFE)

    def h24_gcp_sa_key(self) -> str:
        der = bytes.fromhex(
            "308204bd020100300d06092a864886f70d0101010500048204a7308204a30201000282010100"
        )
        return (
            self.h24_util_armor("PRIVATE KEY", der + self.rng.randbytes(1170)).replace("\n", "\\n")
            + "\\n"
        )

    def h24_rsa_key(self) -> str:
        return self.h24_util_armor("RSA PRIVATE KEY", self.h24_util_rsa_der())

    def h24_openssh_key(self) -> str:
        pub = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + self.rng.randbytes(32)
        blob = (
            b"openssh-key-v1\x00\x00\x00\x00\x04none\x00\x00\x00\x04none\x00\x00\x00\x00"
            + b"\x00\x00\x00\x01"
            + len(pub).to_bytes(4, "big")
            + pub
            + b"\x00\x00\x00\x90"
            + self.rng.randbytes(144)
        )
        return self.h24_util_armor("OPENSSH PRIVATE KEY", blob, 70)

    def h24_ec_key(self) -> str:
        der = (
            bytes.fromhex("30770201010420")
            + self.rng.randbytes(32)
            + bytes.fromhex("a00a06082a8648ce3d030107a14403420004")
            + self.rng.randbytes(64)
        )
        return self.h24_util_armor("EC PRIVATE KEY", der)

    def h24_p8_key(self) -> str:
        der = (
            bytes.fromhex(
                "308193020100301306072a8648ce3d020106082a8648ce3d030107047930770201010420"
            )
            + self.rng.randbytes(32)
            + bytes.fromhex("a144034200")
            + b"\x04"
            + self.rng.randbytes(64)
        )
        return self.h24_util_armor("PRIVATE KEY", der)

    def h24_rsa_p8(self) -> str:
        der = bytes.fromhex(
            "308204bd020100300d06092a864886f70d0101010500048204a7308204a30201000282010100"
        )
        return self.h24_util_armor("PRIVATE KEY", der + self.rng.randbytes(1170))

    def h24_jwt_secret(self) -> str:
        return self.pick([self.s(64, HEX), self.h24_util_b64(48), self.s(48, URLSAFE)])

    def h24_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            return (
                base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode())
                .decode()
                .rstrip("=")
            )

        head = part({"alg": "RS256", "typ": "JWT", "kid": self.s(8, LOWNUM)})
        body = part(
            {
                "iss": "https://auth.brandvoort.eu/realms/tracking",
                "sub": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                "aud": "tracking-api",
                "scope": "shipments:read shipments:write",
                "iat": 1718000000 + self.rng.randrange(10**6),
                "exp": 1790000000 + self.rng.randrange(10**6),
            }
        )
        return f"{head}.{body}.{self.h24_util_b64(256, urlsafe=True, pad=False)}"

    def h24_hex32(self) -> str:
        return self.s(32, HEX)

    def h24_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def h24_stripe(self) -> str:
        return self.pick(["sk_live_", "sk_live_", "rk_live_"]) + self.s(self.pick([24, 99]), ALNUM)

    def h24_stripe_whsec(self) -> str:
        return "whsec_" + self.s(32, ALNUM)

    def h24_fcm_key(self) -> str:
        return f"AAAA{self.s(7, URLSAFE)}:APA91b{self.s(134, URLSAFE)}"

    def h24_mapbox_sk(self) -> str:
        user = self.pick(["brandvoort", "bvl-mobile", "bvl-maps"])
        payload = base64.b64encode(
            json.dumps({"u": user, "a": self.s(25, LOWNUM)}, separators=(",", ":")).encode()
        ).decode()
        return f"sk.{payload.rstrip('=')}.{self.s(22, URLSAFE)}"

    def h24_dckr_pat(self) -> str:
        return "dckr_pat_" + self.s(27, URLSAFE)

    def h24_vault_token(self) -> str:
        return "hvs." + self.s(self.pick([24, 91]), URLSAFE)

    def h24_confluent_secret(self) -> str:
        return self.s(64, ALNUM + "+/")

    def h24_samsara(self) -> str:
        return "samsara_api_" + self.s(30, ALNUM)

    def h24_jfrog(self) -> str:
        return "AKCp8" + self.s(68, ALNUM)

    def h24_openai(self) -> str:
        return f"sk-proj-{self.s(58, URLSAFE)}T3BlbkFJ{self.s(58, URLSAFE)}"

    def h24_databricks(self) -> str:
        return "dapi" + self.s(32, HEX) + self.pick(["", "-2", "-3"])

    def h24_django_key(self) -> str:
        return self.s(50, string.ascii_lowercase + DIGITS + "!@#%^&*(-_=+)")

    def h24_sonar(self) -> str:
        return self.pick(["squ_", "sqp_", "sqa_"]) + self.s(40, HEX)

    def h24_pd_token(self) -> str:
        return self.pick(["u+", "y_", ""]) + self.s(18, URLSAFE)

    def h24_ses_smtp(self) -> str:
        return "B" + self.s(43, ALNUM + "/+")

    def h24_twilio_token(self) -> str:
        return self.s(32, HEX)

    def h24_dd_api(self) -> str:
        return self.s(32, HEX)

    # ------------------------------------------------------------------ negatives: hashes
    def h24_bcrypt(self) -> str:
        return self.pick(["$2a$10$", "$2b$12$", "$2y$11$"]) + self.s(53, CRYPT64)

    def h24_sha256(self) -> str:
        return hashlib.sha256(self.rng.randbytes(24)).hexdigest()

    def h24_sap_hash(self) -> str:
        return "{x-issha, 1024}" + self.h24_util_b64(28)

    def h24_mssql_hash(self) -> str:
        return "0x0200" + self.s(136, HEXU)

    def h24_scram(self) -> str:
        return (
            f"SCRAM-SHA-256$4096:{self.h24_util_b64(16)}${self.h24_util_b64(32)}"
            f":{self.h24_util_b64(32)}"
        )

    def h24_mosq_hash(self) -> str:
        return f"$7$101${self.h24_util_b64(12)}${self.h24_util_b64(64)}"

    # ------------------------------------------------------------------ negatives: encrypted
    def h24_jasypt(self) -> str:
        return "ENC(" + self.h24_util_b64(self.pick([32, 48])) + ")"

    def h24_sops(self) -> str:
        data = self.h24_util_b64(self.rng.randrange(12, 40))
        return (
            f"ENC[AES256_GCM,data:{data},iv:{self.h24_util_b64(32)},"
            f"tag:{self.h24_util_b64(16)},type:str]"
        )

    def h24_sealed(self) -> str:
        return "AgB" + self.h24_util_b64(self.pick([420, 540]))

    def h24_ansible_vault(self) -> str:
        body = self.s(80 * 5 + 40, HEX)
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def h24_jenkins_enc(self) -> str:
        return "{AQAAABAAAAAQ" + self.h24_util_b64(36) + "}"

    def h24_kms_blob(self) -> str:
        return "AQICAHh" + self.h24_util_b64(150)

    def h24_dpapi_blob(self) -> str:
        return self.h24_util_b64(self.pick([192, 256]))

    def h24_enc_key(self) -> str:
        body = base64.b64encode(self.rng.randbytes(48 * 12)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        return (
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
            f"DEK-Info: AES-256-CBC,{self.s(32, HEXU)}\n\n"
            + "\n".join(rows)
            + "\n-----END RSA PRIVATE KEY-----"
        )

    # ------------------------------------------------------------------ negatives: references
    def h24_spring_ref(self) -> str:
        return self.pick(
            [
                "${EDI_DB_PASSWORD}",
                "${EDI_DB_PASSWORD:}",
                "${vault.edi.db-password}",
                "${sm://edi-gateway-db-password}",
            ]
        )

    def h24_compose_ref(self) -> str:
        return self.pick(
            [
                "${FLEET_DB_PASSWORD:?set FLEET_DB_PASSWORD in .env}",
                "${FLEET_DB_PASSWORD}",
                "$FLEET_DB_PASSWORD",
            ]
        )

    def h24_php_ref(self) -> str:
        return self.pick(
            ["env('DB_PASSWORD')", "getenv('QUOTES_DB_PASS')", "$_ENV['QUOTES_DB_PASS']", "DB_PASS"]
        )

    def h24_kotlin_ref(self) -> str:
        return self.pick(
            [
                'System.getenv("BVL_STORE_PASSWORD")',
                'keystoreProperties["storePassword"] as String',
                'providers.gradleProperty("bvlStorePassword").get()',
            ]
        )

    def h24_ps_ref(self) -> str:
        return self.pick(
            [
                "(Get-Secret -Name Bc365ClientSecret -Vault BvlKeyVault)",
                "$env:BC365_CLIENT_SECRET | ConvertTo-SecureString -AsPlainText -Force",
                "(Get-AzKeyVaultSecret -VaultName kv-bvl-finance -Name bc365-client-secret).SecretValue",
                "Read-Host -Prompt 'Client secret' -AsSecureString",
            ]
        )

    def h24_kv_ref(self) -> str:
        return self.pick(
            [
                "@Microsoft.KeyVault(SecretUri=https://kv-bvl-finance.vault.azure.net/secrets/d365-client-secret/)",
                "@Microsoft.KeyVault(VaultName=kv-bvl-finance;SecretName=d365-client-secret)",
                "",
                "<set via user-secrets>",
            ]
        )

    def h24_rust_ref(self) -> str:
        return self.pick(
            [
                'std::env::var("MQTT_PASSWORD").expect("MQTT_PASSWORD not set")',
                'env::var("MQTT_PASSWORD").unwrap_or_default()',
                "settings.mqtt.password.clone()",
            ]
        )

    def h24_c_ref(self) -> str:
        return self.pick(
            [
                'std::getenv("FLEET_PLC_PASSWORD")',
                'params_.get_parameter("plc.password").as_string().c_str()',
                "cfg.plc_password.c_str()",
            ]
        )

    def h24_ci_ref(self) -> str:
        return self.pick(
            [
                "${{ secrets.REGISTRY_PASSWORD }}",
                "${{ secrets.DOCKERHUB_TOKEN }}",
                "$CI_REGISTRY_PASSWORD",
                "${{ steps.vault.outputs.registry_password }}",
            ]
        )

    def h24_tf_ref(self) -> str:
        return self.pick(
            [
                "var.tracking_db_password",
                "random_password.tracking_db.result",
                "data.aws_secretsmanager_secret_version.tracking_db.secret_string",
                "data.azurerm_key_vault_secret.tracking_db.value",
            ]
        )

    def h24_dbt_ref(self) -> str:
        return self.pick(
            [
                "\"{{ env_var('DBT_SNOWFLAKE_PASSWORD') }}\"",
                "\"{{ env_var('SNOWFLAKE_PASSWORD', '') }}\"",
            ]
        )

    def h24_sh_ref(self) -> str:
        return self.pick(
            [
                '"${SFTP_PASS:?SFTP_PASS must be set}"',
                '"$(vault kv get -field=password secret/partners/sftp)"',
                '"$(cat /run/secrets/sftp_pass)"',
                '"$(pass show bvl/partners/sftp)"',
            ]
        )

    def h24_xcode_ref(self) -> str:
        return self.pick(["$(MAPS_API_KEY)", "${GOOGLE_MAPS_API_KEY}", "$(BVL_MAPS_KEY)"])

    def h24_vault_path(self) -> str:
        return self.pick(
            [
                "vault:kv/partners/sftp/dsv#password",
                "secret/data/partners/kuehne-nagel/sftp",
                "kv/edi/partners/hapag/unb_password",
                "awssm://prod/partners/sftp/rhenus",
            ]
        )

    def h24_vault_kv(self) -> str:
        return self.pick(
            [
                "`kv/robotics/vnl1/plc-line3`",
                "`secret/robotics/opcua/amr_fleet`",
                "`kv/data/robotics/plc/line1-3`",
            ]
        )

    def h24_op_ref(self) -> str:
        return self.pick(
            [
                "op://Douane/AGS-DMS/wachtwoord",
                "op://Operations/Customs DMS bridge/password",
                "1Password > Vault 'Douane' > 'DMS koppeling'",
                "Bitwarden: Collections/Customs/DMS",
            ]
        )

    # ------------------------------------------------------------------ negatives: placeholders
    def h24_placeholder(self) -> str:
        return self.pick(
            [
                "<PASSWORT>",
                "<wachtwoord>",
                "<hasło>",
                "CHANGE_ME",
                "xxxxxxxx",
                "********",
                "your-puesc-password",
                "TODO-ask-customs-team",
                "<set-me>",
                "REPLACE_WITH_REAL_VALUE",
            ]
        )

    def h24_redacted(self) -> str:
        return self.pick(
            ["**********", "[REDACTED]", "<redacted>", "•••••••••", "[removed by jira-bot]"]
        )

    def h24_fake(self) -> str:
        return self.pick(
            [
                "fake-password-for-tests",
                "not-a-real-secret",
                "test_dummy_do_not_use",
                "dummy-client-secret",
                "unit-test-only",
                "fixture-password-123",
            ]
        )

    def h24_doc_uri(self) -> str:
        user = self.pick(["demo", "user", "alice", "partner"])
        pw = self.pick(["secret", "s3cr3t", "password", "example-password", "hunter2"])
        host = self.pick(
            ["api.example.com", "sftp.example.org", "db.example", "tracking.test", "rates.invalid"]
        )
        return f"https://{user}:{pw}@{host}"

    def h24_doc_dsn(self) -> str:
        user = self.pick(["demo", "partner", "edi_user"])
        pw = self.pick(["secret", "password", "example", "changeit"])
        host = self.pick(["sftp.example.com", "db.example.org", "edi.partner.test", "mq.example"])
        return f"{self.pick(['sftp', 'postgresql', 'amqp'])}://{user}:{pw}@{host}"

    def h24_doc_webhook(self) -> str:
        return "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"

    def h24_aws_example(self) -> str:
        return self.pick(
            [
                "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "aws_access_key_id = AKIAI44QH8DHBEXAMPLE\n"
                "aws_secret_access_key = je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
            ]
        )

    def h24_bad_github(self) -> str:
        token = self.h24_util_crc_token("ghp")
        return token[:-1] + ("A" if token[-1] != "A" else "B")

    # ------------------------------------------------------------------ negatives: public material
    def h24_cert(self) -> str:
        der = (
            bytes.fromhex("308203")
            + self.rng.randbytes(1)
            + bytes.fromhex("308202")
            + self.rng.randbytes(840)
        )
        return self.h24_util_armor("CERTIFICATE", der)

    def h24_pubkey(self) -> str:
        der = (
            bytes.fromhex("30820122300d06092a864886f70d01010105000382010f003082010a0282010100")
            + self.rng.randbytes(256)
            + bytes.fromhex("0203010001")
        )
        return self.h24_util_armor("PUBLIC KEY", der)

    def h24_pubkey_b64(self) -> str:
        return self.h24_pubkey().split("\n", 1)[1].rsplit("\n", 1)[0].replace("\n", "")

    def h24_ssh_pub(self) -> str:
        body = base64.b64encode(
            b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + self.rng.randbytes(32)
        ).decode()
        return f"ssh-ed25519 {body} sftp-{self.pick(['dsv', 'kuehne', 'rhenus', 'raben'])}@bvl"

    def h24_ssh_hostkey(self) -> str:
        if self.rng.randrange(2):
            body = base64.b64encode(
                b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + self.rng.randbytes(32)
            ).decode()
            return f"ssh-ed25519 {body}"
        body = base64.b64encode(
            b"\x00\x00\x00\x13ecdsa-sha2-nistp256\x00\x00\x00\x08nistp256\x00\x00\x00\x41\x04"
            + self.rng.randbytes(64)
        ).decode()
        return f"ecdsa-sha2-nistp256 {body}"

    def h24_ssh_fpr(self) -> str:
        return "ssh-ed25519 255 " + self.h24_util_b64(32, pad=False)

    def h24_mapbox_pk(self) -> str:
        payload = base64.b64encode(
            json.dumps({"u": "brandvoort", "a": self.s(25, LOWNUM)}, separators=(",", ":")).encode()
        ).decode()
        return f"pk.{payload.rstrip('=')}.{self.s(22, URLSAFE)}"

    def h24_stripe_pk(self) -> str:
        return self.pick(["pk_live_", "pk_test_"]) + self.s(self.pick([24, 99]), ALNUM)

    def h24_vapid_pub(self) -> str:
        return base64.urlsafe_b64encode(b"\x04" + self.rng.randbytes(64)).decode().rstrip("=")

    # ------------------------------------------------------------------ negatives: identifiers
    def h24_container(self) -> str:
        owner = self.pick(["MSCU", "MAEU", "HLXU", "CMAU", "TGHU", "OOLU"])
        serial = self.s(6, DIGITS)
        code = owner + serial
        total = sum(
            (ISO6346[ch] if ch.isalpha() else int(ch)) * (2**i) for i, ch in enumerate(code)
        )
        return code + str(total % 11 % 10)

    def h24_sscc(self) -> str:
        body = "3" + "87" + self.s(14, DIGITS)
        return body + self.h24_util_gs1(body)

    def h24_eori(self) -> str:
        country = self.pick(["NL", "DE", "PL", "GB"])
        if country == "NL":
            return "NL" + self.s(9, DIGITS)
        if country == "DE":
            return "DE" + self.s(7, DIGITS)
        if country == "PL":
            return "PL" + self.s(10, DIGITS) + "00000"
        return "GB" + self.s(12, DIGITS)

    def h24_mrn(self) -> str:
        return (
            self.pick(["24", "25"])
            + self.pick(["NL", "DE", "PL"])
            + self.s(12, UPNUM)
            + self.pick(["A", "B", "J", "K"])
            + self.s(1, DIGITS)
        )

    def h24_tracking(self) -> str:
        return "1Z" + self.s(6, UPNUM) + self.s(10, DIGITS)

    def h24_vin(self) -> str:
        return self.pick(["WDB", "YV2", "XLR", "WMA", "VF6"]) + self.s(14, VIN_CHARS)

    def h24_imei(self) -> str:
        body = "35" + self.s(12, DIGITS)
        return body + self.h24_util_luhn(body)

    def h24_isa_ctrl(self) -> str:
        return self.s(9, DIGITS)

    def h24_edi_ctrl(self) -> str:
        return self.s(self.pick([9, 14]), DIGITS)

    def h24_ros_md5(self) -> str:
        return self.s(32, HEX)

    def h24_image_digest(self) -> str:
        return "sha256:" + self.s(64, HEX)

    def h24_sri(self) -> str:
        return "sha512-" + self.h24_util_b64(64)

    def h24_pd_service(self) -> str:
        return "P" + self.s(6, UPNUM)

    # ------------------------------------------------------------------ negatives: prose
    def h24_i18n_de(self) -> str:
        return self.pick(
            [
                "Das Passwort muss mindestens 12 Zeichen enthalten.",
                "Passwort vergessen?",
                "Kennwort ist abgelaufen, bitte neu vergeben.",
                "Das eingegebene Passwort ist falsch.",
                "Bitte geben Sie Ihr Passwort ein.",
                "Die Passwörter stimmen nicht überein.",
            ]
        )

    def h24_i18n_pl(self) -> str:
        return self.pick(
            [
                "Nieprawidłowe hasło",
                "Hasło musi mieć co najmniej 12 znaków",
                "Zapomniałeś hasła?",
                "Twoje hasło wygasło, ustaw nowe",
                "Wpisz hasło otrzymane od dyspozytora",
                "Hasła nie są identyczne",
            ]
        )


VALUES = Heldout24Values


def _t(path: str, text: str, kind: str, positive: bool) -> evalset.Template:
    return (path, textwrap.dedent(text).lstrip("\n"), kind, positive)


TEMPLATES: list[evalset.Template] = [
    # ------------------------------------------------------------------ EDI gateway
    _t(
        "edi-gateway/src/main/resources/application-prod.yml",
        """
        server:
          port: 8443
          ssl:
            key-store: file:/opt/edi-gateway/tls/edi-gateway.p12
            key-store-type: PKCS12
        spring:
          datasource:
            url: jdbc:postgresql://pg-edi-01.bvl.internal:5432/edi
            username: edi_gw
            password: {V}
            hikari:
              maximum-pool-size: 20
          rabbitmq:
            host: mq.bvl.internal
            port: 5671
            username: edi_gw
            password: '{V2}'
            ssl:
              enabled: true
        edi:
          inbound-dir: /data/edi/inbound
          archive-dir: /data/edi/archive
          partners-file: classpath:partners.xml
        """,
        "h24_pw",
        True,
    ),
    _t(
        "edi-gateway/src/main/resources/application.yml",
        """
        spring:
          application:
            name: edi-gateway
          datasource:
            url: jdbc:postgresql://${EDI_DB_HOST:localhost}:5432/edi
            username: ${EDI_DB_USER:edi_gw}
            password: {V}
          rabbitmq:
            host: ${EDI_MQ_HOST:localhost}
            username: ${EDI_MQ_USER:guest}
            password: {V2}
        management:
          endpoints:
            web:
              exposure:
                include: health,info,prometheus
        """,
        "h24_spring_ref",
        False,
    ),
    _t(
        "edi-samples/outbound/X12_856_ACMEFOODS_20240311_1422.edi",
        """
        ISA*00*          *01*{V}*ZZ*BRANDVOORTNL   *ZZ*ACMEFOODSUS    *240311*1422*U*00401*000004711*0*P*>~
        GS*SH*BRANDVOORTNL*ACMEFOODSUS*20240311*1422*4711*X*004010~
        ST*856*0001~
        BSN*00*SHP240311-0042*20240311*1422~
        HL*1**S~
        TD1*PLT*12****G*4820*KG~
        TD5**2*BVLR*M*BRANDVOORT ROAD~
        REF*BM*BVL-RTM-0088123~
        DTM*011*20240311~
        N1*SF*BRANDVOORT LOGISTICS VENLO*92*NLVEN01~
        N1*ST*ACME FOODS DC ELIZABETH*92*USEWR07~
        CTT*1~
        SE*11*0001~
        GE*1*4711~
        IEA*1*000004711~
        """,
        "h24_isa_pw",
        True,
    ),
    _t(
        "edi-samples/inbound/X12_214_RHENUS_20240402_0815.edi",
        """
        ISA*00*          *00*          *ZZ*RHENUSDE       *ZZ*BRANDVOORTNL   *240402*0815*U*00401*{V}*0*P*>~
        GS*QM*RHENUSDE*BRANDVOORTNL*20240402*0815*{V2}*X*004010~
        ST*214*0001~
        B10*BVL-DUI-552310*RH7781203*RHNS~
        L11*PO-88213*PO~
        AT7*X6*NS***20240402*0805*LT~
        MS1*DUISBURG*NW*DE~
        SE*6*0001~
        GE*1*{V2}~
        IEA*1*{V}~
        """,
        "h24_isa_ctrl",
        False,
    ),
    _t(
        "edi-samples/edifact/IFTMIN_HAPAG_outbound.edi",
        """
        UNA:+.? '
        UNB+UNOC:3+BRANDVOORTNL:ZZ+HLCUEUR:ZZ+240311:1422+00000817+{V}:AA+IFTMIN'
        UNH+1+IFTMIN:D:04A:UN:BIG14'
        BGM+335+BVL-RTM-0088123+9'
        DTM+137:202403111422:203'
        TSR+30+2'
        RFF+BN:HLCURTM2403117'
        TDT+20+114W+1++HLC:172:20+++DEHAM'
        NAD+CZ+BRANDVOORTNL::ZZ++BRANDVOORT LOGISTICS B.V.'
        EQD+CN+HLXU8812305+45G1:102:5+2'
        UNT+10+1'
        UNZ+1+00000817'
        """,
        "h24_unb_pw",
        True,
    ),
    _t(
        "edi-gateway/src/main/resources/partners.xml",
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <partners>
          <partner id="HLCUEUR" name="Hapag-Lloyd Europe">
            <syntax>UNOC:3</syntax>
            <senderId qualifier="ZZ">BRANDVOORTNL</senderId>
            <recipientId qualifier="ZZ">HLCUEUR</recipientId>
            <!-- S005 recipient reference/password, agreed with HL onboarding 2023-09 -->
            <recipientPassword qualifier="AA">{V}</recipientPassword>
            <messages>IFTMIN,IFTSTA,COPARN</messages>
            <transport type="as2" url="https://as2.hlag.example-partner.net/as2" />
          </partner>
          <partner id="RABENPL" name="Raben Logistics Polska">
            <syntax>UNOC:3</syntax>
            <senderId qualifier="ZZ">BRANDVOORTPL</senderId>
            <recipientId qualifier="ZZ">RABENPL</recipientId>
            <recipientPassword qualifier="AA">{V2}</recipientPassword>
            <messages>IFTMIN,IFTSTA</messages>
            <transport type="sftp" host="edi.raben-group.example-partner.net" />
          </partner>
        </partners>
        """,
        "h24_unb_pw",
        True,
    ),
    _t(
        "edi-samples/edifact/IFTSTA_RABEN_inbound.edi",
        """
        UNA:+.? '
        UNB+UNOC:3+RABENPL:ZZ+BRANDVOORTPL:ZZ+240402:0630+{V}++IFTSTA'
        UNH+1+IFTSTA:D:01B:UN'
        BGM+23+ST{V2}+9'
        DTM+137:202404020630:203'
        NAD+CZ+BRANDVOORTPL::ZZ'
        CNI+1+BVL-POZ-771023'
        STS+1+21'
        DTM+334:202404020612:203'
        LOC+175+PLPOZ::6'
        UNT+9+1'
        UNZ+1+{V}'
        """,
        "h24_edi_ctrl",
        False,
    ),
    _t(
        "as2/openas2/config/config.xml",
        """
        <openas2>
          <properties
              storageBaseDir="%home%/../data"
              log_date_format="yyyy-MM-dd HH:mm:ss.SSS" />
          <certificates classname="org.openas2.cert.PKCS12CertificateFactory"
              filename="%home%/as2_certs.p12"
              password="{V}"
              interval="300" />
          <partnerships classname="org.openas2.partner.XMLPartnershipFactory"
              filename="%home%/partnerships.xml" />
          <processor classname="org.openas2.processor.DefaultProcessor"
              pendingMDN="%home%/../data/pendingMDN3"
              pendingMDNinfo="%home%/../data/pendinginfoMDN3">
            <module classname="org.openas2.processor.receiver.AS2ReceiverModule"
                port="10080" errordir="%home%/../data/inbox/error" />
          </processor>
        </openas2>
        """,
        "h24_keystore_pw",
        True,
    ),
    _t(
        "as2/openas2/config/partners/hapag_as2_signing.pem",
        """
        {V}
        """,
        "h24_cert",
        False,
    ),
    _t(
        "edi-gateway-go/internal/van/client.go",
        """
        package van

        import (
        	"crypto/tls"
        	"net/http"
        	"os"
        	"time"
        )

        // Client talks to the GXS/OpenText VAN mailbox used by the US partners.
        type Client struct {
        	BaseURL  string
        	Mailbox  string
        	Password string
        	http     *http.Client
        }

        func getenv(key, fallback string) string {
        	if v, ok := os.LookupEnv(key); ok {
        		return v
        	}
        	return fallback
        }

        func NewFromEnv() *Client {
        	return &Client{
        		BaseURL:  getenv("VAN_URL", "https://van.bvl.internal/mailbox"),
        		Mailbox:  getenv("VAN_MAILBOX", "BVLNL01"),
        		Password: getenv("VAN_PASSWORD", "{V}"),
        		http: &http.Client{
        			Timeout:   30 * time.Second,
        			Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}},
        		},
        	}
        }
        """,
        "h24_pw",
        True,
    ),
    _t(
        "edi-gateway-go/internal/van/client_test.go",
        """
        package van

        import "testing"

        func TestLoginRejectsEmptyPassword(t *testing.T) {
        	c := &Client{BaseURL: "https://van.test", Mailbox: "TEST01", Password: "{V}"}
        	if err := c.validate(); err != nil {
        		t.Fatalf("validate: %v", err)
        	}
        	c.Password = ""
        	if err := c.validate(); err == nil {
        		t.Fatal("expected error for empty password")
        	}
        }
        """,
        "h24_fake",
        False,
    ),
    # ------------------------------------------------------------------ customs
    _t(
        "customs/atlas-connector/conf/atlas.properties",
        """
        # ATLAS Anbindung (Zoll DE) - Produktivumgebung Duisburg
        # Beteiligten-Identifikationsnummer (EORI + Niederlassung)
        atlas.teilnehmer.eori=DE4417825
        atlas.teilnehmer.niederlassung=0001
        atlas.endpoint=https://atlas-gw.bvl.internal/ediframe
        # Zertifikat fuer Signatur/Verschluesselung der Nachrichten
        atlas.zertifikat.datei=/opt/atlas/cert/bvl_dui_atlas_2025.p12
        atlas.zertifikat.passwort={V}
        atlas.zertifikat.alias=bvl-dui-atlas
        atlas.poll.intervall.sekunden=60
        """,
        "h24_keystore_pw",
        True,
    ),
    _t(
        "customs/atlas-connector/conf/atlas-test.properties",
        """
        # ATLAS Anbindung (Zoll DE) - Testumgebung
        atlas.teilnehmer.eori=DE4417825
        atlas.teilnehmer.niederlassung=0001
        atlas.endpoint=https://atlas-gw-test.bvl.internal/ediframe
        # Passwort mit jasypt verschluesselt (Schluessel: JASYPT_ENCRYPTOR_PASSWORD im Vault)
        atlas.zertifikat.datei=/opt/atlas/cert/bvl_dui_atlas_test.p12
        atlas.zertifikat.passwort={V}
        atlas.zertifikat.alias=bvl-dui-atlas-test
        """,
        "h24_jasypt",
        False,
    ),
    _t(
        "customs/puesc-client/.env",
        """
        # PUESC (Platforma Usług Elektronicznych Skarbowo-Celnych) - oddział Poznań
        PUESC_ENV=prod
        PUESC_URL=https://puesc.gov.pl/ws
        PUESC_LOGIN=brandvoort_poz_ws
        PUESC_PASSWORD={V}
        PUESC_CERT_PATH=/etc/puesc/bvl_poz.p12
        EORI=PL7792211045000000
        LOG_LEVEL=info
        """,
        "h24_pw",
        True,
    ),
    _t(
        "customs/puesc-client/.env.example",
        """
        # Skopiuj do .env i uzupełnij dane dostępowe (hasło dostaniesz od działu celnego)
        PUESC_ENV=test
        PUESC_URL=https://test.puesc.gov.pl/ws
        PUESC_LOGIN=brandvoort_poz_ws
        PUESC_PASSWORD={V}
        PUESC_CERT_PATH=/etc/puesc/bvl_poz_test.p12
        EORI=PL0000000000000000
        """,
        "h24_placeholder",
        False,
    ),
    _t(
        "customs/declarations/samples/status_response_NL.json",
        """
        {
          "declarationType": "IM",
          "lrn": "BVL-VNL-2404-00871",
          "mrn": "{V}",
          "status": "RELEASED",
          "customsOffice": "NL000396",
          "declarant": {"eori": "NL812334561", "name": "Brandvoort Logistics B.V."},
          "events": [
            {"code": "ACCEPTED", "at": "2024-04-02T07:41:10Z", "mrn": "{V}"},
            {"code": "RELEASED", "at": "2024-04-02T07:58:44Z", "mrn": "{V}"}
          ]
        }
        """,
        "h24_mrn",
        False,
    ),
    _t(
        "customs/masterdata/clients_eori.csv",
        """
        client_id;name;eori;aeo_status;updated
        C-10021;Van Dijk Agri B.V.;{V};AEOF;2024-01-15
        C-10188;Rheinstahl Handel GmbH;{V2};none;2023-11-02
        C-10240;Polmeble Sp. z o.o.;{V3};AEOC;2024-02-27
        C-10311;Northbridge Imports Ltd;{V4};none;2024-03-08
        """,
        "h24_eori",
        False,
    ),
    _t(
        "customs/cds-uk/hmrc_client.py",
        '''
        """HMRC Customs Declaration Service client (UK imports via Harwich/Felixstowe)."""

        import os

        import requests

        HMRC_BASE = os.getenv("HMRC_BASE", "https://api.service.hmrc.gov.uk")
        HMRC_CLIENT_ID = os.environ["HMRC_CLIENT_ID"]
        HMRC_CLIENT_SECRET = os.getenv("HMRC_CLIENT_SECRET", "{V}")


        def fetch_token(scope: str = "write:customs-declaration") -> str:
            resp = requests.post(
                f"{HMRC_BASE}/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": HMRC_CLIENT_ID,
                    "client_secret": HMRC_CLIENT_SECRET,
                    "scope": scope,
                },
                timeout=20,
            )
            resp.raise_for_status()
            return resp.json()["access_token"]
        ''',
        "h24_uuid_secret",
        True,
    ),
    _t(
        "customs/cds-uk/tests/test_hmrc_client.py",
        """
        from unittest import mock

        import hmrc_client


        @mock.patch.dict("os.environ", {"HMRC_CLIENT_SECRET": "{V}"})
        def test_fetch_token_posts_client_credentials(requests_mock):
            requests_mock.post("https://api.service.hmrc.gov.uk/oauth/token", json={"access_token": "t"})
            assert hmrc_client.fetch_token() == "t"
        """,
        "h24_fake",
        False,
    ),
    _t(
        "customs/ace-abi/abi_filer.ini",
        """
        ; US Customs ACE / ABI filer settings (broker office Newark, via BVL Americas)
        [ABI]
        filer_code=B7X
        host=abi-gw.bvl.internal
        port=9443
        user_id=BVLABI01
        password={V}
        ; password expires every 90 days, rotate in the ABI portal first
        [Queues]
        inbound=ABI.IN.B7X
        outbound=ABI.OUT.B7X
        """,
        "h24_sap_pw",
        True,
    ),
    _t(
        "customs/nl-dms-bridge/DmsBridge/appsettings.Production.json",
        """
        {
          "Logging": { "LogLevel": { "Default": "Information" } },
          "Dms": {
            "BaseUrl": "https://dms-bridge.bvl.internal/api/v2",
            "ClientId": "bvl-venlo-dms",
            "ClientSecret": "{V}",
            "DeclarantEori": "NL812334561"
          },
          "ConnectionStrings": {
            "Declarations": "Server=sql-customs-01.bvl.internal;Database=Douane;Integrated Security=true;TrustServerCertificate=true"
          }
        }
        """,
        "h24_opaque_key",
        True,
    ),
    _t(
        "docs/runbooks/nl/douane-dms-koppeling.md",
        """
        # Douane DMS-koppeling herstarten

        Wanneer aangiftes langer dan 15 minuten in de wachtrij `dms-outbound` blijven staan:

        1. Controleer de status op https://status.bvl.internal/douane.
        2. Log in op `app-customs-02` met je eigen account (niet met `svc_dms`).
        3. Herstart de service: `sudo systemctl restart dms-bridge`.
        4. Het client secret voor DMS staat in de kluis: {V}
           Nooit in tickets of Teams plakken.
        5. Meld in #douane-ops dat de koppeling weer draait.
        """,
        "h24_op_ref",
        False,
    ),
    _t(
        "docs/runbooks/nl/douane-dms-noodprocedure.md",
        """
        # Noodprocedure DMS (alleen bij uitval kluis)

        Als 1Password niet bereikbaar is, kan de dienstdoende engineer tijdelijk inloggen op het
        DMS-portaal met het noodaccount:

        - Gebruiker: `bvl-nood-dms`
        - Wachtwoord: `{V}`

        Na gebruik het wachtwoord direct laten roteren door team Douane (ticket in CUST-board).
        """,
        "h24_pw",
        True,
    ),
    # ------------------------------------------------------------------ WMS
    _t(
        "wms/server/config/wms.properties",
        """
        # Brandvoort WMS - site VNL1 (Venlo cross-dock)
        wms.site.code=VNL1
        wms.db.url=jdbc:sqlserver://sql-wms-01.bvl.internal:1433;databaseName=WMS_VNL1;encrypt=true
        wms.db.user=wms_app
        wms.db.password={V}
        wms.db.pool.max=40

        # Flyway runs with the same login on startup
        flyway.url=${wms.db.url}
        flyway.user=wms_app
        flyway.password={V}

        wms.labels.printer.default=ZD621-VNL1-DOCK04
        wms.robotics.fleet.url=http://fleet-manager.vnl1.bvl.internal:8080
        """,
        "h24_pw",
        True,
    ),
    _t(
        "wms/server/src/main/java/eu/brandvoort/wms/legacy/LegacyStockSync.java",
        """
        package eu.brandvoort.wms.legacy;

        import java.sql.Connection;
        import java.sql.DriverManager;
        import java.sql.SQLException;

        /** Nightly stock sync with the old AS/400 export database in Duisburg. Remove after cutover. */
        public final class LegacyStockSync {
            private static final String URL =
                "jdbc:sqlserver://10.20.4.15:1433;databaseName=LAGER_DUI;encrypt=false";

            private LegacyStockSync() {}

            static Connection open() throws SQLException {
                return DriverManager.getConnection(URL, "lager_sync", "{V}");
            }
        }
        """,
        "h24_pw",
        True,
    ),
    _t(
        "wms/db/migrations/V41__linked_server_duisburg.sql",
        """
        -- Linked server to the Duisburg warehouse DB for the consolidated stock report
        EXEC master.dbo.sp_addlinkedserver
            @server = N'LAGER_DUI',
            @srvproduct = N'',
            @provider = N'MSOLEDBSQL',
            @datasrc = N'sql-lager-dui.bvl.internal';

        EXEC master.dbo.sp_addlinkedsrvlogin
            @rmtsrvname = N'LAGER_DUI',
            @useself = N'False',
            @locallogin = NULL,
            @rmtuser = N'report_ro',
            @rmtpassword = N'{V}';
        GO
        """,
        "h24_pw",
        True,
    ),
    _t(
        "wms/db/logins/create_logins.sql",
        """
        -- scripted from sql-wms-01 with sp_help_revlogin (hashes only)
        CREATE LOGIN [wms_app] WITH PASSWORD = {V} HASHED,
            SID = 0x9C4B1E2F7A3D4C5E8F0A1B2C3D4E5F60, DEFAULT_DATABASE = [WMS_VNL1],
            CHECK_POLICY = ON, CHECK_EXPIRATION = OFF;
        CREATE LOGIN [report_ro] WITH PASSWORD = {V2} HASHED,
            SID = 0x1F2E3D4C5B6A79881726354453627180, DEFAULT_DATABASE = [WMS_VNL1],
            CHECK_POLICY = ON, CHECK_EXPIRATION = OFF;
        """,
        "h24_mssql_hash",
        False,
    ),
    # ------------------------------------------------------------------ handheld app (Android)
    _t(
        "wms-handheld/app/build.gradle.kts",
        """
        plugins {
            id("com.android.application")
            kotlin("android")
        }

        android {
            namespace = "eu.brandvoort.handheld"
            compileSdk = 34

            signingConfigs {
                create("release") {
                    storeFile = file("../keystore/bvl-handheld.jks")
                    storePassword = "{V}"
                    keyAlias = "handheld"
                    keyPassword = "{V}"
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
        "h24_keystore_pw",
        True,
    ),
    _t(
        "wms-handheld/app/build.gradle.kts",
        """
        android {
            namespace = "eu.brandvoort.handheld"
            compileSdk = 34

            signingConfigs {
                create("release") {
                    storeFile = file(System.getenv("BVL_KEYSTORE_PATH") ?: "../keystore/debug.jks")
                    storePassword = {V}
                    keyAlias = "handheld"
                    keyPassword = {V2}
                }
            }
        }
        """,
        "h24_kotlin_ref",
        False,
    ),
    # ------------------------------------------------------------------ robot fleet (ROS 2, C++, PLC)
    _t(
        "robot-fleet/ros_ws/src/fleet_bridge/config/bridge.yaml",
        """
        fleet_bridge:
          ros__parameters:
            site: VNL1
            robot_prefix: amr_
            mqtt:
              host: mqtt.vnl1.bvl.internal
              port: 8883
              tls: true
              client_id: fleet-bridge-vnl1
              username: fleet_bridge
              password: "{V}"
            topics:
              state: bvl/vnl1/amr/+/state
              orders: bvl/vnl1/amr/+/orders
            heartbeat_ms: 500
        """,
        "h24_pw",
        True,
    ),
    _t(
        "robot-fleet/ros_ws/src/fleet_bridge/config/bridge.sim.yaml",
        """
        fleet_bridge:
          ros__parameters:
            site: SIM
            robot_prefix: sim_amr_
            mqtt:
              host: localhost
              port: 1883
              tls: false
              client_id: fleet-bridge-sim
              username: sim
              # simulation broker accepts anything, this is not a real credential
              password: "{V}"
            heartbeat_ms: 1000
        """,
        "h24_fake",
        False,
    ),
    _t(
        "robot-fleet/ros_ws/src/fleet_bridge/launch/fleet.launch.py",
        """
        from launch import LaunchDescription
        from launch_ros.actions import Node


        def generate_launch_description():
            return LaunchDescription(
                [
                    Node(
                        package="fleet_bridge",
                        executable="bridge_node",
                        name="fleet_bridge",
                        parameters=[
                            "config/bridge.yaml",
                            {
                                "wms.url": "https://wms.vnl1.bvl.internal/api",
                                "wms.api_token": "{V}",
                                "use_sim_time": False,
                            },
                        ],
                    ),
                    Node(package="fleet_bridge", executable="watchdog_node", name="watchdog"),
                ]
            )
        """,
        "h24_opaque_key",
        True,
    ),
    _t(
        "robot-fleet/ros_ws/src/amr_msgs/src/amr_msgs/msg/_TaskOrder.py",
        """
        # This Python file uses the following encoding: utf-8
        \"\"\"autogenerated by genpy from amr_msgs/TaskOrder.msg. Do not edit.\"\"\"
        import sys
        python3 = True if sys.hexversion > 0x03000000 else False
        import genpy
        import struct


        class TaskOrder(genpy.Message):
          _md5sum = "{V}"
          _type = "amr_msgs/TaskOrder"
          _has_header = False
          _full_text = \"\"\"string order_id
        string source_location
        string target_location
        uint8 priority
        \"\"\"
          __slots__ = ['order_id','source_location','target_location','priority']
          _slot_types = ['string','string','string','uint8']
        """,
        "h24_ros_md5",
        False,
    ),
    _t(
        "robot-fleet/ros_ws/keystore/enclaves/bvl/fleet_manager/key.pem",
        """
        {V}
        """,
        "h24_ec_key",
        True,
    ),
    _t(
        "robot-fleet/ros_ws/keystore/public/identity_ca.cert.pem",
        """
        {V}
        """,
        "h24_cert",
        False,
    ),
    _t(
        "robot-fleet/controller/src/plc_link.cpp",
        """
        #include "fleet_controller/plc_link.hpp"

        #include <chrono>
        #include <stdexcept>

        namespace bvl::fleet {

        namespace {
        // OPC UA user on the Siemens S7-1500 of conveyor line 3 (VNL1)
        constexpr const char* kPlcEndpoint = "opc.tcp://10.40.3.21:4840";
        constexpr const char* kPlcUser = "amr_fleet";
        constexpr const char* kPlcPassword = "{V}";
        }  // namespace

        PlcLink::PlcLink() : client_(UA_Client_new()) {
          UA_ClientConfig_setDefault(UA_Client_getConfig(client_));
        }

        void PlcLink::connect() {
          auto status = UA_Client_connectUsername(client_, kPlcEndpoint, kPlcUser, kPlcPassword);
          if (status != UA_STATUSCODE_GOOD) {
            throw std::runtime_error("PLC connect failed: " + std::string(UA_StatusCode_name(status)));
          }
        }

        }  // namespace bvl::fleet
        """,
        "h24_plc_pw",
        True,
    ),
    _t(
        "robot-fleet/controller/src/plc_link_params.cpp",
        """
        #include "fleet_controller/plc_link.hpp"

        namespace bvl::fleet {

        void PlcLink::connect(const Params& cfg) {
          const char* user = cfg.plc_user.c_str();
          const char* password = {V};
          if (password == nullptr || *password == '\\0') {
            throw std::runtime_error("PLC password not configured");
          }
          auto status = UA_Client_connectUsername(client_, cfg.endpoint.c_str(), user, password);
          check(status);
        }

        }  // namespace bvl::fleet
        """,
        "h24_c_ref",
        False,
    ),
    _t(
        "plc/exports/VNL1_Line3_OpcUaServer.xml",
        """
        <?xml version="1.0" encoding="utf-8"?>
        <!-- Exported from TIA Portal V18 - OPC UA server interface, line 3 sorter -->
        <OpcUaServerSettings Device="PLC_Line3" Version="1.0">
          <Endpoint Url="opc.tcp://10.40.3.21:4840" SecurityPolicy="Basic256Sha256" Mode="SignAndEncrypt" />
          <UserAuthentication Guest="false">
            <User Name="amr_fleet">
              <Password>{V}</Password>
              <Roles>Read;Write;Call</Roles>
            </User>
            <User Name="scada_ro">
              <Password>{V2}</Password>
              <Roles>Read</Roles>
            </User>
          </UserAuthentication>
        </OpcUaServerSettings>
        """,
        "h24_plc_pw",
        True,
    ),
    _t(
        "plc/exports/VNL1_Line3_UserMgmt.xml",
        """
        <?xml version="1.0" encoding="utf-8"?>
        <!-- Exported from TIA Portal V18 - user management (hashed, safe to commit) -->
        <UserManagement Device="PLC_Line3">
          <User Name="maintenance" Role="Engineering">
            <PasswordHash Algorithm="SHA256">{V}</PasswordHash>
          </User>
          <User Name="operator" Role="HMI">
            <PasswordHash Algorithm="SHA256">{V2}</PasswordHash>
          </User>
        </UserManagement>
        """,
        "h24_sha256",
        False,
    ),
    _t(
        "robot-fleet/amr-image/rootfs/etc/wpa_supplicant/wpa_supplicant-wlan0.conf",
        """
        ctrl_interface=DIR=/run/wpa_supplicant GROUP=netdev
        update_config=0
        country=NL

        network={
            ssid="BVL-AMR-VNL1"
            key_mgmt=WPA-PSK
            psk="{V}"
            priority=10
        }

        network={
            ssid="BVL-AMR-SERVICE"
            key_mgmt=WPA-PSK
            psk="{V2}"
            priority=1
        }
        """,
        "h24_pw",
        True,
    ),
    _t(
        "robot-fleet/docker-compose.yml",
        """
        services:
          fleet-db:
            image: postgres:16
            environment:
              POSTGRES_DB: fleet
              POSTGRES_USER: fleet
              POSTGRES_PASSWORD: {V}
            volumes:
              - fleet-db:/var/lib/postgresql/data

          fleet-manager:
            image: registry.bvl.internal/robotics/fleet-manager:2.8.1
            depends_on: [fleet-db]
            environment:
              FLEET_DB_URL: postgres://fleet:{V}@fleet-db:5432/fleet
              FLEET_SITE: VNL1
            ports:
              - "8080:8080"

        volumes:
          fleet-db: {}
        """,
        "h24_url_pw",
        True,
    ),
    _t(
        "robot-fleet/docker-compose.prod.yml",
        """
        services:
          fleet-db:
            image: postgres:16
            environment:
              POSTGRES_DB: fleet
              POSTGRES_USER: fleet
              POSTGRES_PASSWORD: {V}
          fleet-manager:
            image: registry.bvl.internal/robotics/fleet-manager:2.8.1
            environment:
              FLEET_DB_PASSWORD: {V2}
              FLEET_SITE: ${FLEET_SITE:-VNL1}
        """,
        "h24_compose_ref",
        False,
    ),
    _t(
        "docs/runbooks/de/robotik-notfall-vnl1.md",
        """
        # Notfallhandbuch AMR-Flotte (Standort VNL1)

        ## Flotte steht komplett

        1. Not-Aus an Rampe 4 prüfen (Sichtkontrolle, Quittierung am HMI).
        2. Fleet-Manager-Oberfläche öffnen: http://fleet-manager.vnl1.bvl.internal:8080
        3. Anmelden mit dem Schichtleiter-Konto:
           - Benutzer: `schichtleitung`
           - Passwort: `{V}`
        4. Unter *Missions > Queue* alle hängenden Aufträge abbrechen.
        5. Roboter einzeln neu starten (Taste 3 s gedrückt halten).

        Bei Fragen: Bereitschaft Robotik, +31 77 000 0000.
        """,
        "h24_weak_pw",
        True,
    ),
    _t(
        "docs/runbooks/de/passwort-rotation-plc.md",
        """
        # Passwortwechsel an den PLCs (Linie 1-3)

        Die OPC-UA-Benutzer werden halbjährlich rotiert. Neue Passwörter werden ausschließlich im
        Vault unter {V} abgelegt und vom Fleet-Controller beim Start gelesen.

        Ablauf:

        1. Neues Passwort in TIA Portal setzen und Projekt laden.
        2. Wert im Vault aktualisieren.
        3. `fleet-controller` neu starten, Verbindung im Log prüfen.
        """,
        "h24_vault_kv",
        False,
    ),
    # ------------------------------------------------------------------ carrier-rate marketplace
    _t(
        "rates-marketplace/.env.production",
        """
        NODE_ENV=production
        NEXT_PUBLIC_APP_URL=https://rates.brandvoort.eu
        DATABASE_URL=postgresql://rates_api@pg-rates-01.bvl.internal:5432/rates?sslmode=require
        STRIPE_SECRET_KEY={V}
        STRIPE_CONNECT_CLIENT_ID=ca_PjQ2Lr7mW1xZ0bVn5cTy8uEs3aKd4hGf
        CARRIER_QUOTE_TIMEOUT_MS=8000
        """,
        "h24_stripe",
        True,
    ),
    _t(
        "rates-marketplace/apps/web/.env.production",
        """
        NEXT_PUBLIC_APP_URL=https://rates.brandvoort.eu
        NEXT_PUBLIC_STRIPE_PUBLISHABLE_KEY={V}
        NEXT_PUBLIC_DEFAULT_CURRENCY=EUR
        NEXT_PUBLIC_SUPPORTED_LOCALES=en,de,nl,pl
        """,
        "h24_stripe_pk",
        False,
    ),
    _t(
        "rates-marketplace/apps/api/src/webhooks/stripe.ts",
        """
        import type { Request, Response } from "express";
        import Stripe from "stripe";

        const stripe = new Stripe(process.env.STRIPE_SECRET_KEY!, { apiVersion: "2024-04-10" });
        // TODO(rates-42): drop the fallback once the secret is in the k8s secret
        const endpointSecret = process.env.STRIPE_WEBHOOK_SECRET ?? "{V}";

        export async function stripeWebhook(req: Request, res: Response) {
          const sig = req.headers["stripe-signature"] as string;
          let event: Stripe.Event;
          try {
            event = stripe.webhooks.constructEvent(req.body, sig, endpointSecret);
          } catch (err) {
            return res.status(400).send(`Webhook Error: ${(err as Error).message}`);
          }
          if (event.type === "checkout.session.completed") {
            await markQuotePaid(event.data.object as Stripe.Checkout.Session);
          }
          res.json({ received: true });
        }
        """,
        "h24_stripe_whsec",
        True,
    ),
    _t(
        "rates-marketplace/apps/api/src/carriers/dhl.ts",
        """
        import axios from "axios";

        const DHL_BASE = "https://api-eu.dhl.com/freight/rates/v1";

        export const dhlClient = axios.create({
          baseURL: DHL_BASE,
          timeout: 8000,
          headers: {
            "DHL-API-Key": "{V}",
            Accept: "application/json",
          },
        });

        export async function quoteDhl(origin: string, destination: string, weightKg: number) {
          const { data } = await dhlClient.post("/quotes", { origin, destination, weightKg });
          return data;
        }
        """,
        "h24_opaque_key",
        True,
    ),
    _t(
        "rates-marketplace/apps/api/test/fixtures/ups-tracking.ts",
        """
        export const upsTrackingFixture = {
          trackResponse: {
            shipment: [
              {
                inquiryNumber: "{V}",
                package: [
                  {
                    trackingNumber: "{V}",
                    currentStatus: { code: "011", description: "Delivered" },
                    deliveryDate: [{ type: "DEL", date: "20240402" }],
                  },
                ],
              },
            ],
          },
        };

        export const secondParcel = "{V2}";
        """,
        "h24_tracking",
        False,
    ),
    _t(
        "rates-marketplace/config/carriers.prod.json",
        """
        {
          "fedex": {
            "baseUrl": "https://apis.fedex.com",
            "accountNumber": "740561073",
            "clientId": "l7a1b2c3d4e5f60718293a4b5c6d7e8f9",
            "clientSecret": "{V}"
          },
          "ups": {
            "baseUrl": "https://onlinetools.ups.com",
            "shipperNumber": "A12B34",
            "clientId": "bvl-rates-marketplace",
            "clientSecret": "{V2}"
          },
          "timeoutMs": 8000
        }
        """,
        "h24_opaque_key",
        True,
    ),
    _t(
        "rates-marketplace/apps/api/test/fixtures/carriers.json",
        """
        {
          "fedex": {
            "baseUrl": "http://localhost:4010/fedex",
            "accountNumber": "000000000",
            "clientId": "test-client",
            "clientSecret": "{V}"
          },
          "ups": {
            "baseUrl": "http://localhost:4010/ups",
            "shipperNumber": "TEST01",
            "clientId": "test-client",
            "clientSecret": "{V2}"
          }
        }
        """,
        "h24_fake",
        False,
    ),
    _t(
        "rates-marketplace/.npmrc",
        """
        @brandvoort:registry=https://npm.pkg.github.com
        //npm.pkg.github.com/:_authToken={V}
        engine-strict=true
        save-exact=true
        """,
        "h24_github",
        True,
    ),
    _t(
        "rates-marketplace/apps/web/.npmrc",
        """
        registry=https://registry.npmjs.org/
        //registry.npmjs.org/:_authToken={V}
        """,
        "h24_npm",
        True,
    ),
    _t(
        "rates-marketplace/package-lock.json",
        """
        {
          "name": "rates-marketplace",
          "version": "3.4.0",
          "lockfileVersion": 3,
          "requires": true,
          "packages": {
            "node_modules/stripe": {
              "version": "15.4.0",
              "resolved": "https://registry.npmjs.org/stripe/-/stripe-15.4.0.tgz",
              "integrity": "{V}",
              "license": "MIT"
            },
            "node_modules/axios": {
              "version": "1.6.8",
              "resolved": "https://registry.npmjs.org/axios/-/axios-1.6.8.tgz",
              "integrity": "{V2}",
              "license": "MIT"
            }
          }
        }
        """,
        "h24_sri",
        False,
    ),
    _t(
        "legacy-quotes/config/database.php",
        """
        <?php
        // Legacy quote calculator (2014), still used by the Duisburg sales desk.
        return [
            'default' => 'mysql',
            'connections' => [
                'mysql' => [
                    'driver'    => 'mysql',
                    'host'      => '10.20.4.31',
                    'database'  => 'angebote',
                    'username'  => 'angebote_web',
                    'password'  => '{V}',
                    'charset'   => 'utf8',
                    'collation' => 'utf8_general_ci',
                ],
            ],
        ];
        """,
        "h24_pw",
        True,
    ),
    _t(
        "legacy-quotes/config/database.php",
        """
        <?php
        return [
            'default' => 'mysql',
            'connections' => [
                'mysql' => [
                    'driver'    => 'mysql',
                    'host'      => getenv('QUOTES_DB_HOST') ?: '127.0.0.1',
                    'database'  => 'angebote',
                    'username'  => getenv('QUOTES_DB_USER') ?: 'angebote_web',
                    'password'  => {V},
                    'charset'   => 'utf8mb4',
                ],
            ],
        ];
        """,
        "h24_php_ref",
        False,
    ),
    _t(
        "rate-scraper/config/initializers/mailer.rb",
        """
        # Sends the daily "lane price changes" digest to the pricing team.
        Rails.application.configure do
          config.action_mailer.delivery_method = :smtp
          config.action_mailer.smtp_settings = {
            address: "smtp.sendgrid.net",
            port: 587,
            domain: "brandvoort.eu",
            user_name: "apikey",
            password: "{V}",
            authentication: :plain,
            enable_starttls_auto: true
          }
        end
        """,
        "h24_sendgrid",
        True,
    ),
    _t(
        "rates-marketplace/apps/api/src/notify/slack.ts",
        """
        const SLACK_WEBHOOK_URL =
          process.env.SLACK_WEBHOOK_URL || "{V}";

        export async function notifyPricing(text: string): Promise<void> {
          await fetch(SLACK_WEBHOOK_URL, {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ text, channel: "#pricing-alerts" }),
          });
        }
        """,
        "h24_slack_webhook",
        True,
    ),
    _t(
        "rates-marketplace/docs/integrations/slack.md",
        """
        # Slack notifications

        Set `SLACK_WEBHOOK_URL` to an incoming webhook of the `#pricing-alerts` channel. The URL
        looks like this (example from the Slack docs, not a working hook):

        ```
        SLACK_WEBHOOK_URL={V}
        ```

        Ask #it-helpdesk for a real one; never commit it.
        """,
        "h24_doc_webhook",
        False,
    ),
    _t(
        "rates-marketplace/docs/api/carrier-rates.md",
        """
        # Carrier rates API

        Authenticate with HTTP basic auth (partner account), then request a quote:

        ```bash
        curl -s "{V}/v2/quotes" \\
          -H "Content-Type: application/json" \\
          -d '{"origin":"NLVEN","destination":"PLPOZ","weightKg":820}'
        ```

        The response contains one offer per carrier, sorted by price.
        """,
        "h24_doc_uri",
        False,
    ),
    _t(
        "rates-marketplace/config/auth.yml",
        """
        auth:
          issuer: https://rates.brandvoort.eu
          audience: rates-api
          access_token_ttl: 15m
          refresh_token_ttl: 720h
          jwt:
            algorithm: HS256
            secret: "{V}"
          cookie:
            name: bvl_rates_session
            secure: true
        """,
        "h24_jwt_secret",
        True,
    ),
    # ------------------------------------------------------------------ driver apps
    _t(
        "driver-app/android/app/src/main/AndroidManifest.xml",
        """
        <manifest xmlns:android="http://schemas.android.com/apk/res/android">
            <uses-permission android:name="android.permission.ACCESS_FINE_LOCATION" />
            <uses-permission android:name="android.permission.CAMERA" />
            <application
                android:name=".MainApplication"
                android:label="@string/app_name"
                android:icon="@mipmap/ic_launcher">
                <meta-data
                    android:name="com.google.android.geo.API_KEY"
                    android:value="{V}" />
                <activity android:name=".MainActivity" android:exported="true" />
            </application>
        </manifest>
        """,
        "h24_google_api",
        True,
    ),
    _t(
        "driver-app/ios/BvlDriver/Info.plist",
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
        <plist version="1.0">
        <dict>
            <key>CFBundleDisplayName</key>
            <string>BVL Driver</string>
            <key>GMSApiKey</key>
            <string>{V}</string>
            <key>NSLocationWhenInUseUsageDescription</key>
            <string>Your location is shared with dispatch while a trip is active.</string>
        </dict>
        </plist>
        """,
        "h24_xcode_ref",
        False,
    ),
    _t(
        "driver-push/src/main/resources/application.properties",
        """
        # push notifications to the driver app (legacy FCM HTTP API, migration to v1 in DRV-311)
        push.fcm.endpoint=https://fcm.googleapis.com/fcm/send
        push.fcm.server-key={V}
        push.fcm.dry-run=false
        push.retry.max-attempts=3
        """,
        "h24_fcm_key",
        True,
    ),
    _t(
        "driver-app/ios/fastlane/keys/AuthKey_7QK2M4XH9P.p8",
        """
        {V}
        """,
        "h24_p8_key",
        True,
    ),
    _t(
        "driver-app/src/push/webPush.ts",
        """
        // Public VAPID key of the dispatch web console; the private half lives in driver-push.
        export const VAPID_PUBLIC_KEY =
          "{V}";

        export async function subscribe(reg: ServiceWorkerRegistration) {
          return reg.pushManager.subscribe({
            userVisibleOnly: true,
            applicationServerKey: VAPID_PUBLIC_KEY,
          });
        }
        """,
        "h24_vapid_pub",
        False,
    ),
    _t(
        "driver-app/.env.production",
        """
        APP_ENV=production
        API_BASE_URL=https://driver-api.brandvoort.eu
        # used by the Gradle/CocoaPods build to download the Mapbox SDK
        MAPBOX_DOWNLOADS_TOKEN={V}
        SENTRY_ENVIRONMENT=production
        """,
        "h24_mapbox_sk",
        True,
    ),
    _t(
        "driver-app/src/config/maps.ts",
        """
        import Mapbox from "@rnmapbox/maps";

        // public style token, URL-restricted to the app bundle ids
        export const MAPBOX_PUBLIC_TOKEN = "{V}";

        Mapbox.setAccessToken(MAPBOX_PUBLIC_TOKEN);
        export const STYLE_URL = "mapbox://styles/brandvoort/clt0driver0v2";
        """,
        "h24_mapbox_pk",
        False,
    ),
    _t(
        "driver-app/android/keystore.properties",
        """
        storeFile=../keystores/bvl-driver-release.jks
        storePassword={V}
        keyAlias=bvl-driver
        keyPassword={V}
        """,
        "h24_keystore_pw",
        True,
    ),
    _t(
        "driver-app/src/i18n/pl.json",
        """
        {
          "login.title": "Logowanie kierowcy",
          "login.username": "Numer kierowcy",
          "login.password": "Hasło",
          "login.password_hint": "{V}",
          "login.error": "{V2}",
          "trip.start": "Rozpocznij trasę"
        }
        """,
        "h24_i18n_pl",
        False,
    ),
    _t(
        "driver-app/fastlane/.env.default",
        """
        # Fastlane defaults for the BVL Driver app
        FASTLANE_USER=mobile-release@brandvoort.eu
        FASTLANE_PASSWORD={V}
        MATCH_GIT_URL=git@gitlab.bvl.internal:mobile/certificates.git
        MATCH_PASSWORD={V2}
        FASTLANE_TEAM_ID=7QK2M4XH9P
        """,
        "h24_pw",
        True,
    ),
    _t(
        "driver-notify/.env",
        """
        TWILIO_ACCOUNT_SID=AC3f9e1b2c4d5a6978e0f1a2b3c4d5e6f7
        TWILIO_AUTH_TOKEN={V}
        TWILIO_FROM=+3197010250000
        NOTIFY_LOCALE_DEFAULT=nl
        """,
        "h24_twilio_token",
        True,
    ),
    # ------------------------------------------------------------------ telematics
    _t(
        "telematics/geotab-sync/config.ini",
        """
        [geotab]
        server = my.geotab.com
        database = brandvoort
        username = api-sync@brandvoort.eu
        password = {V}

        [sync]
        feeds = LogRecord,StatusData,ExceptionEvent
        interval_seconds = 30
        target = kafka://kafka.bvl.internal:9093/telematics.raw
        """,
        "h24_pw",
        True,
    ),
    _t(
        "telematics/samsara/sync_vehicles.py",
        '''
        """Pull vehicle stats from Samsara for the Polish subcontractor fleet."""

        import requests

        SAMSARA_TOKEN = "{V}"
        BASE = "https://api.eu.samsara.com"


        def vehicle_stats(types: str = "gps,engineStates") -> list[dict]:
            resp = requests.get(
                f"{BASE}/fleet/vehicles/stats",
                headers={"Authorization": f"Bearer {SAMSARA_TOKEN}"},
                params={"types": types},
                timeout=30,
            )
            resp.raise_for_status()
            return resp.json()["data"]
        ''',
        "h24_samsara",
        True,
    ),
    _t(
        "telematics/samsara/tests/test_vin_mapping.py",
        """
        from sync_vehicles import map_vin_to_trailer


        def test_vins_map_to_known_tractors():
            fleet = {"{V}": "BVL-T-101", "{V2}": "BVL-T-102", "{V3}": "BVL-T-205"}
            for vin, unit in fleet.items():
                assert map_vin_to_trailer(vin) == unit
        """,
        "h24_vin",
        False,
    ),
    _t(
        "telematics/mqtt/mosquitto/conf.d/bridge-webfleet.conf",
        """
        # bridge to the Webfleet/TomTom telematics broker (trailer temperature sensors)
        connection webfleet-reefer
        address mqtt.reefer-telematics.bvl.internal:8883
        bridge_cafile /etc/mosquitto/certs/ca.crt
        bridge_protocol_version mqttv311
        remote_clientid bvl-venlo-bridge
        remote_username bvl_reefer
        remote_password {V}
        topic reefer/# in 1 bvl/reefer/ ""
        cleansession false
        """,
        "h24_pw",
        True,
    ),
    _t(
        "telematics/mqtt/mosquitto/passwd",
        """
        fleet_bridge:{V}
        reefer_ingest:{V2}
        grafana_ro:{V3}
        """,
        "h24_mosq_hash",
        False,
    ),
    _t(
        "telematics/webfleet/client.go",
        """
        package webfleet

        import (
        	"net/http"
        	"net/url"
        	"time"
        )

        const (
        	endpoint = "https://csv.webfleet.com/extern"
        	account  = "brandvoort-nl"
        	username = "api_telematics"
        	password = "{V}"
        )

        type Client struct{ http *http.Client }

        func New() *Client { return &Client{http: &http.Client{Timeout: 20 * time.Second}} }

        func (c *Client) query(action string, extra url.Values) (*http.Response, error) {
        	q := url.Values{"account": {account}, "username": {username}, "password": {password},
        		"action": {action}, "outputformat": {"json"}, "lang": {"en"}}
        	for k, v := range extra {
        		q[k] = v
        	}
        	return c.http.Get(endpoint + "?" + q.Encode())
        }
        """,
        "h24_pw",
        True,
    ),
    _t(
        "telematics/devices/trackers.json",
        """
        [
          {"unit": "BVL-T-101", "device": "FMC650", "imei": "{V}", "sim_iccid": "8931440400012345678", "fw": "03.28.07"},
          {"unit": "BVL-T-102", "device": "FMC650", "imei": "{V2}", "sim_iccid": "8931440400012345686", "fw": "03.28.07"},
          {"unit": "BVL-R-017", "device": "FMB140", "imei": "{V3}", "sim_iccid": "8931440400012345694", "fw": "03.27.14"}
        ]
        """,
        "h24_imei",
        False,
    ),
    _t(
        "telematics/ingest/client.properties",
        """
        bootstrap.servers=pkc-lq8v7.eu-central-1.aws.confluent.cloud:9092
        security.protocol=SASL_SSL
        sasl.mechanism=PLAIN
        sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="KQ4M7XDRYB2PZ3NW" password="{V}";
        client.dns.lookup=use_all_dns_ips
        session.timeout.ms=45000
        acks=all
        """,
        "h24_confluent_secret",
        True,
    ),
    _t(
        "telematics/edge-agent/src/config.rs",
        """
        //! Defaults for the trailer edge agent (Raspberry Pi CM4 in the reefer units).

        pub const BROKER_URL: &str = "mqtts://mqtt.reefer-telematics.bvl.internal:8883";
        pub const MQTT_USERNAME: &str = "reefer_edge";
        pub const MQTT_PASSWORD: &str = "{V}";
        pub const PUBLISH_INTERVAL_SECS: u64 = 30;

        pub fn client_id(unit: &str) -> String {
            format!("edge-{unit}")
        }
        """,
        "h24_pw",
        True,
    ),
    _t(
        "telematics/edge-agent/src/mqtt.rs",
        """
        use rumqttc::{AsyncClient, MqttOptions, TlsConfiguration, Transport};
        use std::time::Duration;

        pub fn connect(unit: &str) -> (AsyncClient, rumqttc::EventLoop) {
            let mut opts = MqttOptions::new(crate::config::client_id(unit), "mqtt.reefer-telematics.bvl.internal", 8883);
            let password = {V};
            opts.set_credentials("reefer_edge", password);
            opts.set_keep_alive(Duration::from_secs(20));
            opts.set_transport(Transport::Tls(TlsConfiguration::default()));
            AsyncClient::new(opts, 64)
        }
        """,
        "h24_rust_ref",
        False,
    ),
    # ------------------------------------------------------------------ finance / ERP
    _t(
        "finance/sap-bridge/sapnwrfc.ini",
        """
        DEFAULT
        RFC_TRACE=0

        DEST=PRD
        ASHOST=sap-prd-ci.bvl.internal
        SYSNR=00
        CLIENT=100
        USER=RFC_BVL_EDI
        PASSWD={V}
        LANG=EN

        DEST=QAS
        ASHOST=sap-qas-ci.bvl.internal
        SYSNR=10
        CLIENT=200
        USER=RFC_BVL_EDI
        LANG=EN
        """,
        "h24_sap_pw",
        True,
    ),
    _t(
        "finance/sap-bridge/post_invoices.py",
        '''
        """Posts customs duty invoices from the broker system into SAP FI (BAPI_ACC_DOCUMENT_POST)."""

        from pyrfc import Connection

        conn = Connection(
            ashost="sap-prd-ci.bvl.internal",
            sysnr="00",
            client="100",
            user="RFC_BVL_FI",
            passwd="{V}",
            lang="EN",
        )


        def post(document: dict) -> str:
            result = conn.call("BAPI_ACC_DOCUMENT_POST", **document)
            conn.call("BAPI_TRANSACTION_COMMIT", WAIT="X")
            return result["OBJ_KEY"]
        ''',
        "h24_sap_pw",
        True,
    ),
    _t(
        "finance/sap-bridge/audit/usr02_export_2024Q1.csv",
        """
        MANDT;BNAME;USTYP;CLASS;PWDSALTEDHASH;PWDLGNDATE
        100;RFC_BVL_EDI;B;RFC;{V};20240301
        100;RFC_BVL_FI;B;RFC;{V2};20240311
        100;JDEVRIES;A;FINANCE;{V3};20240328
        """,
        "h24_sap_hash",
        False,
    ),
    _t(
        "finance/d365-connector/appsettings.json",
        """
        {
          "AzureAd": {
            "Instance": "https://login.microsoftonline.com/",
            "TenantId": "4f1c2a9e-7d3b-4c8e-9a61-2b5e8d0f3c17",
            "ClientId": "b2e7c9a4-1f3d-4e6b-8c2a-9d0e5f7a1b3c",
            "ClientSecret": "{V}"
          },
          "Dynamics": {
            "Environment": "https://brandvoort-fin.operations.dynamics.com",
            "LegalEntity": "BVNL"
          }
        }
        """,
        "h24_azure_secret",
        True,
    ),
    _t(
        "finance/d365-connector/appsettings.Production.json",
        """
        {
          "AzureAd": {
            "TenantId": "4f1c2a9e-7d3b-4c8e-9a61-2b5e8d0f3c17",
            "ClientId": "b2e7c9a4-1f3d-4e6b-8c2a-9d0e5f7a1b3c",
            "ClientSecret": "{V}"
          },
          "Dynamics": {
            "Environment": "https://brandvoort-fin.operations.dynamics.com",
            "LegalEntity": "BVNL"
          }
        }
        """,
        "h24_kv_ref",
        False,
    ),
    _t(
        "finance/bc365/Export-OpenInvoices.ps1",
        r"""
        # Exports open sales invoices from Business Central (BVL Polska) for the dunning run.
        param(
            [string]$Company = "Brandvoort Polska Sp. z o.o.",
            [string]$OutDir = "D:\Exports\Dunning"
        )

        $tenant = "4f1c2a9e-7d3b-4c8e-9a61-2b5e8d0f3c17"
        $clientId = "6a0d3e8f-2c4b-4f71-9e5a-c1b7d2e3f4a5"
        $secret = ConvertTo-SecureString "{V}" -AsPlainText -Force
        $cred = New-Object System.Management.Automation.PSCredential($clientId, $secret)

        Connect-AzAccount -ServicePrincipal -Tenant $tenant -Credential $cred | Out-Null
        $token = (Get-AzAccessToken -ResourceUrl "https://api.businesscentral.dynamics.com").Token
        $headers = @{ Authorization = "Bearer $token" }
        Invoke-RestMethod -Headers $headers -Uri "https://api.businesscentral.dynamics.com/v2.0/$tenant/Production/api/v2.0/companies" |
            ConvertTo-Json -Depth 5 | Out-File (Join-Path $OutDir "companies.json")
        """,
        "h24_azure_secret",
        True,
    ),
    _t(
        "finance/bc365/Export-OpenInvoices.ps1",
        r"""
        param(
            [string]$Company = "Brandvoort Polska Sp. z o.o.",
            [string]$OutDir = "D:\Exports\Dunning"
        )

        $tenant = "4f1c2a9e-7d3b-4c8e-9a61-2b5e8d0f3c17"
        $clientId = "6a0d3e8f-2c4b-4f71-9e5a-c1b7d2e3f4a5"
        $secret = {V}
        $cred = New-Object System.Management.Automation.PSCredential($clientId, $secret)
        Connect-AzAccount -ServicePrincipal -Tenant $tenant -Credential $cred | Out-Null
        """,
        "h24_ps_ref",
        False,
    ),
    _t(
        "finance/InvoiceMatcher/Program.cs",
        """
        using Microsoft.Data.SqlClient;

        namespace Brandvoort.Finance.InvoiceMatcher;

        internal static class Program
        {
            // carrier invoices vs. booked freight costs, nightly at 02:00
            private const string ConnectionString =
                "Server=sql-fin-01.bvl.internal;Database=FreightCosts;User Id=fin_matcher;Password={V};TrustServerCertificate=True";

            private static async Task<int> Main(string[] args)
            {
                await using var conn = new SqlConnection(ConnectionString);
                await conn.OpenAsync();
                var matched = await Matcher.RunAsync(conn, DateOnly.FromDateTime(DateTime.Today.AddDays(-1)));
                Console.WriteLine($"matched {matched} invoice lines");
                return 0;
            }
        }
        """,
        "h24_pw",
        True,
    ),
    _t(
        "finance/InvoiceMatcher.Web/Web.config",
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
          <system.web>
            <compilation targetFramework="4.8" />
          </system.web>
        </configuration>
        """,
        "h24_dpapi_blob",
        False,
    ),
    _t(
        "finance/bank-sftp/pull_camt053.sh",
        """
        #!/usr/bin/env bash
        # Pulls CAMT.053 bank statements from the ING host-to-host SFTP every morning.
        set -euo pipefail

        HOST=h2h-sftp.ing.example-bank.nl
        USER=BVLNL_H2H01
        TARGET=/data/finance/camt053/$(date +%Y%m%d)
        mkdir -p "$TARGET"

        sshpass -p '{V}' sftp -oBatchMode=no -oStrictHostKeyChecking=yes "$USER@$HOST" <<EOF
        cd /outbox/camt053
        mget *.xml $TARGET/
        EOF
        """,
        "h24_pw",
        True,
    ),
    _t(
        "finance/bc365/test-bc-webservice.http",
        """
        ### Business Central OData web service (NAV-style basic auth, on-prem BC14 Duisburg)
        GET https://bc14-dui.bvl.internal:7048/BC140/ODataV4/Company('BVL%20Deutschland')/SalesInvoices?$top=5
        Accept: application/json
        Authorization: Basic {V}

        ###
        """,
        "h24_basic_b64",
        True,
    ),
    # ------------------------------------------------------------------ partner SFTP drops
    _t(
        "partners/sftp/filezilla/sitemanager.xml",
        """
        <?xml version="1.0" encoding="UTF-8" standalone="yes" ?>
        <FileZilla3 version="3.66.4" platform="windows">
            <Servers>
                <Folder expanded="1">Partner drops
                    <Server>
                        <Host>sftp.dsv-drop.bvl-partners.net</Host>
                        <Port>22</Port>
                        <Protocol>1</Protocol>
                        <Type>0</Type>
                        <User>bvl_venlo</User>
                        <Pass encoding="base64">{V}</Pass>
                        <Logontype>1</Logontype>
                        <Name>DSV inbound (POD scans)</Name>
                        <RemoteDir>1 0 6 inbound</RemoteDir>
                    </Server>
                </Folder>
            </Servers>
        </FileZilla3>
        """,
        "h24_b64_pw",
        True,
    ),
    _t(
        "partners/sftp/keys/kuehne_drop_ed25519",
        """
        {V}
        """,
        "h24_openssh_key",
        True,
    ),
    _t(
        "partners/sftp/keys/kuehne_drop_ed25519.pub",
        """
        {V}
        """,
        "h24_ssh_pub",
        False,
    ),
    _t(
        "partners/sftp/known_hosts",
        """
        sftp.dsv-drop.bvl-partners.net {V}
        edi.raben-group.example-partner.net {V2}
        h2h-sftp.ing.example-bank.nl {V3}
        """,
        "h24_ssh_hostkey",
        False,
    ),
    _t(
        "partners/sftp/partners.yaml",
        """
        # partner drop boxes polled by sftp-poller (Venlo + Poznan)
        partners:
          - id: dsv
            host: sftp.dsv-drop.bvl-partners.net
            user: bvl_venlo
            password: "{V}"
            inbound: /inbound
            pattern: "*.pdf"
          - id: rhenus
            host: files.rhenus-exchange.bvl-partners.net
            user: brandvoort
            password: "{V2}"
            inbound: /out/brandvoort
            pattern: "IFTSTA_*.edi"
          - id: raben
            host: edi.raben-group.example-partner.net
            user: bvl_poz
            password: "{V3}"
            inbound: /outbox
            pattern: "*.xml"
        """,
        "h24_pw",
        True,
    ),
    _t(
        "partners/sftp/partners.yaml",
        """
        # partner drop boxes polled by sftp-poller; credentials come from Vault at runtime
        partners:
          - id: dsv
            host: sftp.dsv-drop.bvl-partners.net
            user: bvl_venlo
            password_ref: "{V}"
            inbound: /inbound
          - id: rhenus
            host: files.rhenus-exchange.bvl-partners.net
            user: brandvoort
            password_ref: "{V2}"
            inbound: /out/brandvoort
        """,
        "h24_vault_path",
        False,
    ),
    _t(
        "partners/sftp/scripts/push_rhenus.lftp",
        """
        # lftp -f push_rhenus.lftp  (called by cron on app-edi-03)
        set sftp:auto-confirm no
        set net:max-retries 3
        open -u brandvoort,{V} sftp://files.rhenus-exchange.bvl-partners.net
        cd /in/brandvoort
        mput -E /data/edi/outbound/rhenus/*.edi
        bye
        """,
        "h24_url_pw",
        True,
    ),
    _t(
        "partners/sftp/scripts/Send-PodScans.ps1",
        r"""
        Add-Type -Path "C:\Program Files (x86)\WinSCP\WinSCPnet.dll"

        $sessionOptions = New-Object WinSCP.SessionOptions -Property @{
            Protocol = [WinSCP.Protocol]::Sftp
            HostName = "sftp.dsv-drop.bvl-partners.net"
            UserName = "bvl_venlo"
            Password = "{V}"
            SshHostKeyFingerprint = "ssh-ed25519 255 Jq3mQm4yX0bV1c2N5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
        }

        $session = New-Object WinSCP.Session
        try {
            $session.Open($sessionOptions)
            $session.PutFiles("E:\PodScans\outbound\*.pdf", "/inbound/", $True).Check()
        }
        finally {
            $session.Dispose()
        }
        """,
        "h24_pw",
        True,
    ),
    _t(
        "partners/sftp/scripts/Get-RabenStatus.ps1",
        r"""
        Add-Type -Path "C:\Program Files (x86)\WinSCP\WinSCPnet.dll"

        $cred = Get-StoredCredential -Target "sftp-raben"
        $sessionOptions = New-Object WinSCP.SessionOptions -Property @{
            Protocol = [WinSCP.Protocol]::Sftp
            HostName = "edi.raben-group.example-partner.net"
            UserName = $cred.UserName
            SecurePassword = $cred.Password
            SshHostKeyFingerprint = "{V}"
        }
        """,
        "h24_ssh_fpr",
        False,
    ),
    _t(
        "partners/sftp/scripts/sync_partner_drops.sh",
        """
        #!/bin/sh
        # Mirrors partner outboxes to /data/partners; run from cron every 10 minutes.
        SFTP_USER="${SFTP_USER:-bvl_poz}"
        SFTP_PASS="${SFTP_PASS:-{V}}"
        SFTP_HOST="${SFTP_HOST:-edi.raben-group.example-partner.net}"

        lftp -u "$SFTP_USER,$SFTP_PASS" "sftp://$SFTP_HOST" -e "mirror --only-newer /outbox /data/partners/raben; bye"
        """,
        "h24_url_pw",
        True,
    ),
    _t(
        "partners/sftp/scripts/sync_partner_drops.sh",
        """
        #!/bin/sh
        set -eu
        SFTP_USER="${SFTP_USER:-bvl_poz}"
        SFTP_PASS={V}
        SFTP_HOST="${SFTP_HOST:-edi.raben-group.example-partner.net}"

        lftp -u "$SFTP_USER,$SFTP_PASS" "sftp://$SFTP_HOST" -e "mirror --only-newer /outbox /data/partners/raben; bye"
        """,
        "h24_sh_ref",
        False,
    ),
    _t(
        "docs/partners/sftp-onboarding.md",
        """
        # Onboarding a new SFTP partner

        1. Ask the partner for their host, port and the SSH host key fingerprint.
        2. Create the entry in `partners/sftp/partners.yaml` with a `password_ref`.
        3. Test the connection from a jump host. Example (documentation host, not real):

           ```
           lftp {V}
           ```

        4. Add the partner to the monitoring dashboard.
        """,
        "h24_doc_dsn",
        False,
    ),
    # ------------------------------------------------------------------ data warehouse
    _t(
        "dwh/dbt/profiles.yml",
        """
        bvl_dwh:
          target: prod
          outputs:
            prod:
              type: snowflake
              account: bvl-eu1.west-europe.azure
              user: DBT_PROD
              password: "{V}"
              role: TRANSFORMER
              database: ANALYTICS
              warehouse: TRANSFORMING
              schema: marts
              threads: 8
        """,
        "h24_pw",
        True,
    ),
    _t(
        "dwh/dbt/profiles.yml",
        """
        bvl_dwh:
          target: dev
          outputs:
            dev:
              type: snowflake
              account: bvl-eu1.west-europe.azure
              user: "{{ env_var('DBT_USER') }}"
              password: {V}
              role: TRANSFORMER
              database: ANALYTICS_DEV
              warehouse: TRANSFORMING
              schema: "dbt_{{ env_var('DBT_USER') | lower }}"
              threads: 4
        """,
        "h24_dbt_ref",
        False,
    ),
    _t(
        "dwh/airflow/.env",
        """
        AIRFLOW__CORE__EXECUTOR=CeleryExecutor
        AIRFLOW__CORE__LOAD_EXAMPLES=False
        AIRFLOW_CONN_DWH_POSTGRES=postgresql://dwh_loader:{V}@pg-dwh-01.bvl.internal:5432/staging
        AIRFLOW_CONN_EDI_ARCHIVE=sftp://edi_archive:{V2}@app-edi-03.bvl.internal:22
        AIRFLOW_UID=50000
        """,
        "h24_url_pw",
        True,
    ),
    _t(
        "dwh/keys/snowflake_loader_rsa_key.p8",
        """
        {V}
        """,
        "h24_rsa_p8",
        True,
    ),
    _t(
        "dwh/sql/setup/01_users.sql",
        """
        -- key-pair auth for the loader service user (public half only)
        CREATE USER IF NOT EXISTS SVC_LOADER
            DEFAULT_ROLE = LOADER
            DEFAULT_WAREHOUSE = LOADING
            TYPE = SERVICE;

        ALTER USER SVC_LOADER SET RSA_PUBLIC_KEY = '{V}';
        GRANT ROLE LOADER TO USER SVC_LOADER;
        """,
        "h24_pubkey_b64",
        False,
    ),
    _t(
        "dwh/sql/setup/02_reporting_users.sql",
        """
        -- Postgres reporting replica (Power BI gateway)
        CREATE ROLE powerbi_gw LOGIN PASSWORD '{V}';
        GRANT CONNECT ON DATABASE reporting TO powerbi_gw;
        GRANT USAGE ON SCHEMA marts TO powerbi_gw;
        GRANT SELECT ON ALL TABLES IN SCHEMA marts TO powerbi_gw;
        """,
        "h24_pw",
        True,
    ),
    _t(
        "dwh/sql/audit/pg_authid_2024-03.sql",
        """
        -- pg_dumpall --roles-only from pg-dwh-01 (for the access review, hashes only)
        CREATE ROLE dwh_loader;
        ALTER ROLE dwh_loader WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN PASSWORD '{V}';
        CREATE ROLE powerbi_gw;
        ALTER ROLE powerbi_gw WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN PASSWORD '{V2}';
        """,
        "h24_scram",
        False,
    ),
    _t(
        "dwh/notebooks/hs_code_suggestions.ipynb",
        """
        {
         "cells": [
          {
           "cell_type": "markdown",
           "metadata": {},
           "source": ["# HS code suggestions for free-text goods descriptions (pilot)"]
          },
          {
           "cell_type": "code",
           "execution_count": 1,
           "metadata": {},
           "outputs": [],
           "source": [
            "from openai import OpenAI\\n",
            "import pandas as pd\\n",
            "client = OpenAI(api_key=\\"{V}\\")\\n",
            "df = pd.read_parquet('s3://bvl-dwh-sandbox/customs/goods_descriptions.parquet')"
           ]
          }
         ],
         "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
        "h24_openai",
        True,
    ),
    _t(
        "dwh/notebooks/pallet_dwell_times.ipynb",
        """
        {
         "cells": [
          {
           "cell_type": "code",
           "execution_count": 3,
           "metadata": {},
           "outputs": [
            {
             "name": "stdout",
             "output_type": "stream",
             "text": [
              "longest dwell (VNL1, March):\\n",
              "  {V}  71.4 h  DOCK-07\\n",
              "  {V2}  66.0 h  DOCK-02\\n",
              "  {V3}  58.9 h  DOCK-07\\n"
             ]
            }
           ],
           "source": ["top_dwell(df, site='VNL1', month='2024-03')"]
          }
         ],
         "metadata": {},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
        "h24_sscc",
        False,
    ),
    _t(
        "dwh/databricks/.databrickscfg",
        """
        [DEFAULT]
        host = https://adb-4418823390112233.7.azuredatabricks.net
        token = {V}

        [sandbox]
        host = https://adb-4418823390119876.11.azuredatabricks.net
        token = {V2}
        """,
        "h24_databricks",
        True,
    ),
    _t(
        "dwh/loaders/telematics_loader.py",
        """
        import os

        import psycopg

        DSN = dict(
            host=os.getenv("DWH_HOST", "pg-dwh-01.bvl.internal"),
            dbname="staging",
            user=os.getenv("DWH_USER", "dwh_loader"),
            password=os.getenv("DWH_PASSWORD", "{V}"),
        )


        def load(batch):
            with psycopg.connect(**DSN) as conn, conn.cursor() as cur:
                cur.executemany("INSERT INTO raw.telematics_positions VALUES (%s, %s, %s, %s)", batch)
        """,
        "h24_pw",
        True,
    ),
    # ------------------------------------------------------------------ runbooks, tickets, chat
    _t(
        "docs/runbooks/en/edi-gateway-restart.md",
        """
        # EDI gateway: restart and replay

        **Severity:** P2 if inbound IFTSTA is delayed > 30 min.

        1. Open the admin console: https://edi-admin.bvl.internal
        2. Log in with the shared on-call account `edi_admin` / `{V}`
        3. *Interchanges > Failed* - select all from the last hour, click **Replay**.
        4. If replay fails, restart the pods:
           `kubectl -n edi rollout restart deploy/edi-gateway`
        5. Post an update in #oncall-edi.
        """,
        "h24_weak_pw",
        True,
    ),
    _t(
        "docs/runbooks/pl/magazyn-poz-sftp.md",
        """
        # Magazyn POZ1 - awaria wymiany plików z Raben

        Objawy: brak plików IFTSTA w `/data/partners/raben` od ponad godziny.

        1. Zaloguj się na `app-edi-03` (konto imienne).
        2. Sprawdź połączenie ręcznie:
           `sftp bvl_poz@edi.raben-group.example-partner.net`
           hasło: `{V}`
        3. Jeżeli logowanie nie działa, zadzwoń do helpdesku Raben (numer w Confluence).
        4. Po naprawie uruchom `sync_partner_drops.sh` ręcznie.
        """,
        "h24_pw",
        True,
    ),
    _t(
        "docs/runbooks/pl/reset-hasla-kierowcy.md",
        """
        # Reset hasła kierowcy (aplikacja BVL Driver)

        Kierowca widzi komunikat: „{V}"

        1. Znajdź kierowcę w panelu dyspozytora po numerze kierowcy.
        2. Kliknij **Resetuj hasło** - kierowca dostanie SMS z linkiem.
        3. Hasła nie podajemy przez telefon.
        """,
        "h24_i18n_pl",
        False,
    ),
    _t(
        "tickets/jira-export/INC-4711.json",
        """
        {
          "key": "INC-4711",
          "fields": {
            "summary": "EDI: Hapag IFTMIN rejected with UNB password error",
            "priority": {"name": "High"},
            "status": {"name": "Resolved"},
            "reporter": {"displayName": "Marta Nowak"},
            "description": "Since 06:10 all IFTMIN to HLCUEUR come back with CONTRL error 'recipient password invalid'. Hapag changed it on their side. New value from their onboarding mail is {V} - I updated partners.xml on prod by hand, please move it to Vault.",
            "resolution": {"name": "Fixed"}
          }
        }
        """,
        "h24_unb_pw",
        True,
    ),
    _t(
        "tickets/jira-export/SUP-2291.md",
        """
        **SUP-2291 - Zugang Partnerportal Kühne (Team Export Duisburg)**

        *Status:* Erledigt · *Bearbeiter:* T. Becker

        > Hallo zusammen, für das Partnerportal bitte bis auf Weiteres den Sammelzugang nutzen:
        > Benutzer `bvl_export_dui`, Passwort `{V}`
        > Bitte nicht weitergeben. Gruß, Thomas
        """,
        "h24_weak_pw",
        True,
    ),
    _t(
        "tickets/jira-export/SUP-2307.md",
        """
        **SUP-2307 - Passwort für Partnerportal abgelaufen**

        *Status:* Erledigt · *Bearbeiter:* T. Becker

        > Das neue Passwort für den Sammelzugang habe ich im Passwortsafe hinterlegt.
        > Im Ticket steht aus Sicherheitsgründen nur: `{V}`
        """,
        "h24_redacted",
        False,
    ),
    _t(
        "chat-exports/slack/oncall-edi/2024-03-12.txt",
        """
        [02:11] pagerduty-bot: [TRIGGERED] edi-gateway: inbound queue lag > 30m (P2)
        [02:14] jan.kowalski: looking. GitLab deploy token expired again, pipeline can't pull the image
        [02:19] jan.kowalski: created a new one with read_registry only: {V}
        [02:19] jan.kowalski: set it in the CI variable too
        [02:23] s.vandenberg: thx, rollout is green now
        [02:40] pagerduty-bot: [RESOLVED] edi-gateway: inbound queue lag > 30m
        """,
        "h24_gitlab",
        True,
    ),
    _t(
        "chat-exports/teams/Zoll-DUI/2024-02-20.txt",
        """
        20.02.2024 08:41 Thomas Becker: Guten Morgen, ATLAS hängt wieder
        20.02.2024 08:44 Anna Schulz: Zertifikat ist abgelaufen, neues P12 liegt auf dem Share
        20.02.2024 08:45 Anna Schulz: Passwort: {V}
        20.02.2024 08:52 Thomas Becker: Läuft wieder, danke!
        """,
        "h24_keystore_pw",
        True,
    ),
    _t(
        "oncall/tools/trigger_test_alert.sh",
        """
        #!/usr/bin/env bash
        # Fires a test incident into the "EDI Gateway" PagerDuty service (Events API v2).
        curl -sS -X POST https://events.eu.pagerduty.com/v2/enqueue \\
          -H 'Content-Type: application/json' \\
          -d '{
            "routing_key": "{V}",
            "event_action": "trigger",
            "payload": {
              "summary": "TEST - please ignore (on-call handover check)",
              "source": "oncall-tools",
              "severity": "info"
            }
          }'
        """,
        "h24_hex32",
        True,
    ),
    _t(
        "oncall/tools/ack_open_incidents.py",
        '''
        """Acknowledge all open incidents of a service during planned maintenance."""

        import sys

        import requests

        PD_TOKEN = "{V}"
        HEADERS = {
            "Authorization": f"Token token={PD_TOKEN}",
            "Accept": "application/vnd.pagerduty+json;version=2",
            "From": "oncall-bot@brandvoort.eu",
        }


        def main(service_id: str) -> None:
            r = requests.get(
                "https://api.eu.pagerduty.com/incidents",
                headers=HEADERS,
                params={"service_ids[]": service_id, "statuses[]": "triggered"},
                timeout=15,
            )
            for inc in r.json()["incidents"]:
                print("ack", inc["id"])


        if __name__ == "__main__":
            main(sys.argv[1])
        ''',
        "h24_pd_token",
        True,
    ),
    _t(
        "oncall/services.yaml",
        """
        # PagerDuty services per team (ids only; API access via the oncall-bot token in Vault)
        services:
          edi-gateway:
            pagerduty_id: {V}
            escalation: edi-primary
          customs-connectors:
            pagerduty_id: {V2}
            escalation: customs
          robot-fleet-vnl1:
            pagerduty_id: {V3}
            escalation: robotics
        """,
        "h24_pd_service",
        False,
    ),
    # ------------------------------------------------------------------ CI
    _t(
        ".github/workflows/build-edi-gateway.yml",
        """
        name: build-edi-gateway
        on:
          push:
            branches: [main]
        jobs:
          image:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - uses: docker/login-action@v3
                with:
                  username: brandvoortci
                  password: {V}
              - uses: docker/build-push-action@v5
                with:
                  context: edi-gateway
                  push: true
                  tags: brandvoort/edi-gateway:${{ github.sha }}
        """,
        "h24_dckr_pat",
        True,
    ),
    _t(
        ".github/workflows/build-customs.yml",
        """
        name: build-customs
        on:
          push:
            branches: [main]
        jobs:
          image:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - uses: docker/login-action@v3
                with:
                  registry: registry.bvl.internal
                  username: ci-customs
                  password: {V}
              - uses: docker/build-push-action@v5
                with:
                  context: customs
                  push: true
                  tags: registry.bvl.internal/customs/atlas-connector:${{ github.sha }}
        """,
        "h24_ci_ref",
        False,
    ),
    _t(
        ".gitlab-ci.yml",
        """
        stages: [test, analyze, deploy]

        variables:
          SONAR_HOST_URL: https://sonar.bvl.internal
          SONAR_TOKEN: "{V}"
          GIT_DEPTH: "0"

        unit:
          stage: test
          image: maven:3.9-eclipse-temurin-21
          script: mvn -B verify

        sonar:
          stage: analyze
          image: sonarsource/sonar-scanner-cli:5
          script: sonar-scanner -Dsonar.projectKey=bvl-wms
        """,
        "h24_sonar",
        True,
    ),
    _t(
        "wms/Jenkinsfile",
        """
        pipeline {
            agent { label 'linux-docker' }
            stages {
                stage('Build') {
                    steps { sh './mvnw -B -DskipTests package' }
                }
                stage('Publish') {
                    steps {
                        withEnv(["NEXUS_USER=ci-wms", "NEXUS_PASSWORD={V}"]) {
                            sh './mvnw -B deploy -s .mvn/settings.xml'
                        }
                    }
                }
            }
        }
        """,
        "h24_pw",
        True,
    ),
    _t(
        "jenkins/credentials.xml",
        """
        <?xml version='1.1' encoding='UTF-8'?>
        <com.cloudbees.plugins.credentials.SystemCredentialsProvider plugin="credentials@1337.v60b_d7b_c7b_c9f">
          <domainCredentialsMap class="hudson.util.CopyOnWriteMap$Hash">
            <entry>
              <com.cloudbees.plugins.credentials.domains.Domain><specifications/></com.cloudbees.plugins.credentials.domains.Domain>
              <java.util.concurrent.CopyOnWriteArrayList>
                <com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
                  <id>nexus-ci-wms</id>
                  <username>ci-wms</username>
                  <password>{V}</password>
                </com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
                <com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
                  <id>sftp-raben</id>
                  <username>bvl_poz</username>
                  <password>{V2}</password>
                </com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
              </java.util.concurrent.CopyOnWriteArrayList>
            </entry>
          </domainCredentialsMap>
        </com.cloudbees.plugins.credentials.SystemCredentialsProvider>
        """,
        "h24_jenkins_enc",
        False,
    ),
    _t(
        "tools/release/publish-release.sh",
        """
        #!/usr/bin/env bash
        set -euo pipefail
        # creates the GitHub release for the driver app and uploads the APK
        export GITHUB_TOKEN={V}
        VERSION=$(jq -r .version driver-app/package.json)
        gh release create "driver-v$VERSION" driver-app/android/app/build/outputs/apk/release/*.apk \\
          --repo brandvoort/driver-app --title "BVL Driver $VERSION" --notes-file CHANGELOG.md
        """,
        "h24_github",
        True,
    ),
    _t(
        "tools/release/tests/test_token_format.py",
        """
        from release.tokens import looks_like_github_token


        def test_rejects_token_with_bad_checksum():
            # last character flipped on purpose: fails the CRC32 check, not a real token
            assert not looks_like_github_token("{V}")
        """,
        "h24_bad_github",
        False,
    ),
    _t(
        "build/gradle/init.d/artifactory.gradle",
        """
        allprojects {
            repositories {
                maven {
                    url "https://bvl.jfrog.io/artifactory/libs-release"
                    credentials {
                        username = "ci-robotics"
                        password = "{V}"
                    }
                }
            }
        }
        """,
        "h24_jfrog",
        True,
    ),
    # ------------------------------------------------------------------ infrastructure
    _t(
        "infra/terraform/tracking/rds.tf",
        """
        resource "aws_db_instance" "tracking" {
          identifier              = "bvl-tracking-prod"
          engine                  = "postgres"
          engine_version          = "16.2"
          instance_class          = "db.r6g.large"
          allocated_storage       = 200
          username                = "tracking_admin"
          password                = "{V}"
          db_subnet_group_name    = aws_db_subnet_group.tracking.name
          vpc_security_group_ids  = [aws_security_group.tracking_db.id]
          backup_retention_period = 14
          deletion_protection     = true
        }
        """,
        "h24_pw",
        True,
    ),
    _t(
        "infra/terraform/tracking/rds.tf",
        """
        resource "aws_db_instance" "tracking" {
          identifier             = "bvl-tracking-prod"
          engine                 = "postgres"
          instance_class         = "db.r6g.large"
          username               = "tracking_admin"
          password               = {V}
          vpc_security_group_ids = [aws_security_group.tracking_db.id]
          deletion_protection    = true
        }
        """,
        "h24_tf_ref",
        False,
    ),
    _t(
        "infra/terraform/azure/terraform.tfvars",
        """
        subscription_id = "8d2f4b61-3a9c-4e7d-b5f0-1c6e9a2d7b48"
        tenant_id       = "4f1c2a9e-7d3b-4c8e-9a61-2b5e8d0f3c17"
        client_id       = "e3a9c1f7-5b2d-4a86-9f0e-7c4d1b8a2e65"
        client_secret   = "{V}"
        location        = "westeurope"
        environment     = "prod"
        """,
        "h24_azure_secret",
        True,
    ),
    _t(
        "infra/terraform/legacy-eu/providers.tf",
        """
        # TODO: move to OIDC / assume-role, this was copied from the 2021 setup
        provider "aws" {
          region     = "eu-central-1"
          {V}
        }

        terraform {
          backend "s3" {
            bucket = "bvl-terraform-state"
            key    = "legacy-eu/terraform.tfstate"
            region = "eu-central-1"
          }
        }
        """,
        "h24_aws_pair_tf",
        True,
    ),
    _t(
        "ops/aws/credentials.edi-archive",
        """
        [default]
        region = eu-central-1

        [edi-archive]
        {V}
        region = eu-central-1
        """,
        "h24_aws_pair_ini",
        True,
    ),
    _t(
        "docs/infra/aws-cli-setup.md",
        """
        # AWS CLI setup

        Never create long-lived access keys; use `aws sso login --profile bvl-prod`.

        If a tool really needs a static key profile, the file looks like this (AWS documentation
        example values):

        ```ini
        [example]
        {V}
        ```
        """,
        "h24_aws_example",
        False,
    ),
    _t(
        "infra/k8s/edi/secret-edi-gateway.yaml",
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: edi-gateway-db
          namespace: edi
        type: Opaque
        stringData:
          EDI_DB_USER: edi_gw
          EDI_DB_PASSWORD: "{V}"
          EDI_MQ_PASSWORD: "{V2}"
        """,
        "h24_pw",
        True,
    ),
    _t(
        "infra/k8s/customs/secret-sftp.yaml",
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: customs-sftp-credentials
          namespace: customs
        type: Opaque
        data:
          SFTP_USER: YnZsX3Zlbmxv
          SFTP_PASSWORD: {V}
        """,
        "h24_b64_pw",
        True,
    ),
    _t(
        "infra/k8s/customs/sealedsecret-sftp.yaml",
        """
        apiVersion: bitnami.com/v1alpha1
        kind: SealedSecret
        metadata:
          name: customs-sftp-credentials
          namespace: customs
        spec:
          encryptedData:
            SFTP_PASSWORD: {V}
            SFTP_USER: {V2}
          template:
            metadata:
              name: customs-sftp-credentials
        """,
        "h24_sealed",
        False,
    ),
    _t(
        "infra/k8s/edi/deployment.yaml",
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: edi-gateway
          namespace: edi
        spec:
          replicas: 3
          template:
            spec:
              containers:
                - name: edi-gateway
                  image: registry.bvl.internal/edi/edi-gateway@{V}
                  env:
                    - name: EDI_DB_PASSWORD
                      valueFrom:
                        secretKeyRef:
                          name: edi-gateway-db
                          key: EDI_DB_PASSWORD
        """,
        "h24_image_digest",
        False,
    ),
    _t(
        "infra/helm/rabbitmq/values-prod.yaml",
        """
        auth:
          username: bvl_admin
          password: "{V}"
          erlangCookie: "{V2}"
        replicaCount: 3
        persistence:
          size: 50Gi
        metrics:
          enabled: true
        """,
        "h24_pw",
        True,
    ),
    _t(
        "infra/helm/tracking-api/secrets.prod.yaml",
        """
        trackingApi:
            dbPassword: {V}
            redisPassword: {V2}
            jwtSecret: {V3}
        sops:
            kms: []
            azure_kv:
                - vault_url: https://kv-bvl-platform.vault.azure.net
                  name: sops-key
                  version: 2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d0e
            lastmodified: "2024-03-18T09:12:44Z"
            mac: ENC[AES256_GCM,data:k3Q=,iv:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]
            version: 3.8.1
        """,
        "h24_sops",
        False,
    ),
    _t(
        "infra/ansible/group_vars/wms/vars.yml",
        """
        wms_site: VNL1
        wms_db_host: sql-wms-01.bvl.internal
        wms_db_user: wms_app
        wms_db_password: "{V}"
        wms_java_opts: "-Xms2g -Xmx6g"
        wms_label_printers:
          - ZD621-VNL1-DOCK04
          - ZD621-VNL1-DOCK07
        """,
        "h24_pw",
        True,
    ),
    _t(
        "infra/ansible/group_vars/wms/vault.yml",
        """
        wms_site: VNL1
        wms_db_user: wms_app
        wms_db_password: !vault |
          {IV}
        """,
        "h24_ansible_vault",
        False,
    ),
    _t(
        "infra/docker/edi-gateway.Dockerfile",
        """
        FROM maven:3.9-eclipse-temurin-21 AS build
        ARG NEXUS_USER=ci-edi
        ARG NEXUS_PASSWORD={V}
        WORKDIR /src
        COPY . .
        RUN mvn -B -s .mvn/settings.xml -Dnexus.user=$NEXUS_USER -Dnexus.password=$NEXUS_PASSWORD package -DskipTests

        FROM eclipse-temurin:21-jre
        COPY --from=build /src/target/edi-gateway.jar /app/edi-gateway.jar
        ENTRYPOINT ["java", "-jar", "/app/edi-gateway.jar"]
        """,
        "h24_pw",
        True,
    ),
    _t(
        "infra/vault/bootstrap-notes.txt",
        """
        vault operator init output, 2024-01-09 (prod cluster vault-bvl-01)
        Root token kept here until the OIDC auth method is configured.

        Initial Root Token: {V}

        Vault initialized with 5 key shares and a key threshold of 3.
        Unseal keys were handed out to the keyholders in person.
        """,
        "h24_vault_token",
        True,
    ),
    _t(
        "infra/monitoring/datadog/datadog.yaml",
        """
        api_key: {V}
        site: datadoghq.eu
        hostname_fqdn: true
        tags:
          - env:prod
          - team:platform
        logs_enabled: true
        apm_config:
          enabled: true
        """,
        "h24_dd_api",
        True,
    ),
    _t(
        "rates-marketplace/apps/api/prisma/seed.sql",
        """
        -- seed users for the staging marketplace (hashes generated with bcrypt cost 12)
        INSERT INTO "User" (id, email, role, "passwordHash", "createdAt") VALUES
          ('usr_ops01', 'pricing-ops@brandvoort.eu', 'ADMIN', '{V}', now()),
          ('usr_demo01', 'demo.shipper@brandvoort.eu', 'SHIPPER', '{V2}', now()),
          ('usr_carrier01', 'demo.carrier@brandvoort.eu', 'CARRIER', '{V3}', now());
        """,
        "h24_bcrypt",
        False,
    ),
    _t(
        "infra/monitoring/alertmanager/alertmanager.yml",
        """
        global:
          resolve_timeout: 5m
          slack_api_url: '{V}'
        route:
          receiver: oncall-edi
          group_by: [alertname, namespace]
        receivers:
          - name: oncall-edi
            slack_configs:
              - channel: '#oncall-edi'
                send_resolved: true
        """,
        "h24_slack_webhook",
        True,
    ),
    _t(
        "infra/monitoring/Send-TeamsAlert.ps1",
        """
        param([string]$Title, [string]$Text)

        $webhook = "{V}"
        $card = @{
            "@type"    = "MessageCard"
            "@context" = "https://schema.org/extensions"
            summary    = $Title
            title      = $Title
            text       = $Text
        } | ConvertTo-Json
        Invoke-RestMethod -Method Post -Uri $webhook -Body $card -ContentType "application/json"
        """,
        "h24_teams_webhook",
        True,
    ),
    _t(
        "infra/monitoring/slack-bot/config.toml",
        """
        [slack]
        bot_token = "{V}"
        default_channel = "#oncall-edi"

        [pagerduty]
        base_url = "https://api.eu.pagerduty.com"
        """,
        "h24_slack_bot",
        True,
    ),
    _t(
        "infra/tls/wildcard.brandvoort.eu.crt",
        """
        {V}
        """,
        "h24_cert",
        False,
    ),
    _t(
        "infra/tls/wildcard.brandvoort.eu.key",
        """
        {V}
        """,
        "h24_rsa_key",
        True,
    ),
    _t(
        "infra/tls/edi-gateway.key.enc.pem",
        """
        {V}
        """,
        "h24_enc_key",
        False,
    ),
    _t(
        "infra/gcp/sa-dwh-loader.json",
        """
        {
          "type": "service_account",
          "project_id": "bvl-dwh-prod",
          "private_key_id": "3f9a1c7e5b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a",
          "private_key": "{V}",
          "client_email": "dwh-loader@bvl-dwh-prod.iam.gserviceaccount.com",
          "client_id": "104887213390561122334",
          "auth_uri": "https://accounts.google.com/o/oauth2/auth",
          "token_uri": "https://oauth2.googleapis.com/token"
        }
        """,
        "h24_gcp_sa_key",
        True,
    ),
    _t(
        "infra/azure/pod-archive.env",
        """
        # proof-of-delivery archive (scanned CMRs)
        AZURE_STORAGE_ACCOUNT=bvlpodstore
        AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=https;AccountName=bvlpodstore;AccountKey={V};EndpointSuffix=core.windows.net
        POD_CONTAINER=proof-of-delivery
        """,
        "h24_azure_storage",
        True,
    ),
    _t(
        "driver-api/app/pod_upload.py",
        """
        from azure.storage.blob import ContainerClient

        # SAS valid until end of 2026, generated in the portal (DRV-188)
        POD_CONTAINER_SAS_URL = "{V}"


        def upload_pod(trip_id: str, data: bytes) -> str:
            container = ContainerClient.from_container_url(POD_CONTAINER_SAS_URL)
            name = f"{trip_id}/cmr.pdf"
            container.upload_blob(name, data, overwrite=True)
            return name
        """,
        "h24_sas_url",
        True,
    ),
    _t(
        "infra/aws/lambda/edi-archive/env.json",
        """
        {
          "Variables": {
            "ARCHIVE_BUCKET": "bvl-edi-archive",
            "DB_HOST": "pg-edi-01.bvl.internal",
            "DB_USER": "edi_archive",
            "DB_PASSWORD_ENCRYPTED": "{V}",
            "KMS_KEY_ALIAS": "alias/edi-archive"
          }
        }
        """,
        "h24_kms_blob",
        False,
    ),
    _t(
        "infra/aws/ses/postfix-relay.cf",
        """
        # relay for dispatch notifications via Amazon SES (eu-west-1)
        relayhost = [email-smtp.eu-west-1.amazonaws.com]:587
        smtp_sasl_auth_enable = yes
        smtp_sasl_security_options = noanonymous
        smtp_tls_security_level = encrypt
        # sasl_passwd line kept here for reference when rebuilding the relay
        # [email-smtp.eu-west-1.amazonaws.com]:587 AKIAQ3XKJ7M2N4P6R5TZ:{V}
        """,
        "h24_ses_smtp",
        True,
    ),
    # ------------------------------------------------------------------ tracking portal and API
    _t(
        "tracking-portal/bvltracking/settings/production.py",
        """
        from .base import *  # noqa: F403

        DEBUG = False
        ALLOWED_HOSTS = ["track.brandvoort.eu", "track.brandvoort.nl", "track.brandvoort.pl"]

        SECRET_KEY = "{V}"

        LANGUAGES = [("en", "English"), ("de", "Deutsch"), ("nl", "Nederlands"), ("pl", "Polski")]
        SESSION_COOKIE_SECURE = True
        CSRF_COOKIE_SECURE = True
        """,
        "h24_django_key",
        True,
    ),
    _t(
        "tracking-portal/locale/de/LC_MESSAGES/django.po",
        """
        # German translation of the BVL tracking portal
        msgid ""
        msgstr ""
        "Language: de\\n"
        "Content-Type: text/plain; charset=UTF-8\\n"

        #: accounts/forms.py:41
        msgid "Password"
        msgstr "Passwort"

        #: accounts/forms.py:58
        msgid "accounts.password.help_text"
        msgstr "{V}"

        #: accounts/views.py:112
        msgid "accounts.password.error"
        msgstr "{V2}"
        """,
        "h24_i18n_de",
        False,
    ),
    _t(
        "tracking-api/internal/container/iso6346_test.go",
        """
        package container

        import "testing"

        func TestValidCheckDigit(t *testing.T) {
        	for _, no := range []string{"{V}", "{V2}", "{V3}"} {
        		if !Valid(no) {
        			t.Errorf("%s: expected valid ISO 6346 check digit", no)
        		}
        	}
        }
        """,
        "h24_container",
        False,
    ),
    _t(
        "docs/postman/tracking-api.postman_collection.json",
        """
        {
          "info": {
            "name": "BVL Tracking API (prod)",
            "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
          },
          "item": [
            {
              "name": "Get shipment events",
              "request": {
                "method": "GET",
                "header": [
                  {"key": "Authorization", "value": "Bearer {V}"},
                  {"key": "Accept-Language", "value": "nl"}
                ],
                "url": "https://api.brandvoort.eu/tracking/v2/shipments/BVL-RTM-0088123/events"
              }
            }
          ]
        }
        """,
        "h24_jwt",
        True,
    ),
    _t(
        "infra/nginx/conf.d/bc14-proxy.conf",
        """
        # exposes the on-prem Business Central OData API to the finance integration VM only
        server {
            listen 8443 ssl;
            server_name bc14-proxy.bvl.internal;
            ssl_certificate     /etc/nginx/tls/bc14-proxy.crt;
            ssl_certificate_key /etc/nginx/tls/bc14-proxy.key;

            allow 10.20.8.14;
            deny all;

            location /BC140/ {
                proxy_pass https://bc14-dui.bvl.internal:7048;
                proxy_set_header Authorization "Basic {V}";
                proxy_set_header Host $host;
            }
        }
        """,
        "h24_basic_b64",
        True,
    ),
    _t(
        "infra/redis/redis-tracking.conf",
        """
        bind 0.0.0.0
        port 6379
        protected-mode yes
        requirepass {V}
        masterauth {V}
        maxmemory 4gb
        maxmemory-policy allkeys-lru
        appendonly yes
        """,
        "h24_pw",
        True,
    ),
]
