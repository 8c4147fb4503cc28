"""Blind part ``tune27``: a global shipping and logistics company, Havnor Tideway Logistics (HTL:
container shipping, port terminal operations, contract warehousing, road and rail forwarding),
with teams in Hamburg, Rotterdam, Singapore and Sao Paulo. Files are container tracking services
(Go, Java/Spring, Kotlin), port terminal integrations over EDI/EDIFACT (BAPLIE, COPARN, CODECO,
IFTSTA messages, AS2/SFTP partner config, OFTP2), warehouse robot fleet controllers (Python,
Rust, ROS launch files), route optimisation jobs (Python, OR-Tools, HERE/Google Maps), customs
brokers' API clients (C#, PHP, Ruby), driver mobile apps (Kotlin, Swift, React Native,
Fastlane), IoT trackers on reefer containers (MQTT, Azure IoT Hub, LoRaWAN), SAP and Oracle back
offices (JCo, sapnwrfc.ini, PL/SQL, tnsnames), infrastructure (Terraform, Kubernetes, Helm,
Compose, Ansible, CI pipelines, Dockerfiles), runbooks in English, German, Dutch and Portuguese,
i18n bundles, fixtures and logs. Written blind (without seeing the scanner, its rules or other
parts' templates).

Look-alikes sit under the same key names: container numbers with ISO 6346 check digits, bills of
lading, IMO numbers, UN/LOCODEs, EDI interchange references, IMEIs and device ids, UUIDs that are
ids, digests and checksums, password hashes, encrypted values (Jasypt, Ansible Vault, SOPS, KMS,
sealed secrets), public keys and certificates, placeholders, environment and secret-store
references, redactions, documented example credentials and UI text about passwords.
"""

from __future__ import annotations

import base64
import hashlib
import json
import string
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
ISO6346 = dict(
    zip(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        [
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
        ],
        strict=True,
    )
)


class Tune27Values(evalset.Values):
    """Value generators of the tune27 part; every name starts with ``t27_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "anchor",
            "bollard",
            "reefer",
            "hawser",
            "quayside",
            "mooring",
            "gantry",
            "lashing",
            "starboard",
            "tugboat",
            "harbour",
            "spreader",
            "drayage",
            "windlass",
        ]
        self.users = [
            "tracking",
            "edi_gw",
            "tos_sync",
            "wms",
            "routeopt",
            "customs",
            "driverapp",
            "iot_ingest",
            "sap_rfc",
            "reporting",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def _b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        text = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
        return text if pad else text.rstrip("=")

    def _crc_token(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def _armor(self, label: str, nbytes: int) -> str:
        body = base64.b64encode(self.rng.randbytes(nbytes)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _host(self) -> str:
        return self.pick(
            [
                "pg-tracking.prod.htl.internal",
                "10.42.8.15",
                "oracle-bo.ham.htl.local",
                "db01.sgp.havnor-tideway.com",
                "mq.rtm.htl.internal",
                "sqlbr-gru-01.htl.local",
            ]
        )

    # ------------------------------------------------------------------ positives: passwords
    def t27_pw(self) -> str:
        shape = self.rng.randrange(7)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*$"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(12, 22), ALNUM + "!#%^*-_=+"
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}_{other}_{self.s(3, DIGITS)}"
        if shape == 3:
            return "Ht" + self.s(13, ALNUM) + self.pick(list("!#%"))
        if shape == 4:
            return self.s(18, ALNUM)
        if shape == 5:
            return (
                self.pick(["Hamburg", "Rotterdam", "Santos", "Singapur"]) + "#" + self.s(5, DIGITS)
            )
        leet = word.replace("a", "4").replace("o", "0").replace("e", "3")
        return leet.capitalize() + "@" + self.s(4, DIGITS)

    def t27_weak_pw(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(
                [
                    "Havnor123",
                    "welkom01",
                    "Passwort1!",
                    "senha123",
                    "Container1",
                    "sap12345",
                    "Admin2024!",
                    "manager",
                    "Hafen2023",
                ]
            )
        if shape == 1:
            return "Tideway" + str(self.rng.randrange(2015, 2026)) + self.pick(["", "!", "#"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2024", "!", "01"])
        return (
            self.pick(["Sommer", "Winter", "Zomer", "Verao", "Monsoon"])
            + str(self.rng.randrange(2019, 2026))
            + self.pick(["", "!"])
        )

    def t27_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(5, DIGITS)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(14, 24), ALNUM + "-_.")

    def t27_oracle_pw(self) -> str:
        return self.s(1, string.ascii_uppercase) + self.s(10, ALNUM) + "#" + self.s(2, DIGITS)

    def t27_sap_pw(self) -> str:
        return self.s(1, string.ascii_uppercase) + self.s(7, ALNUM + "!$%") + self.s(1, DIGITS)

    def t27_app_specific_pw(self) -> str:
        return "-".join(self.s(4, string.ascii_lowercase) for _ in range(4))

    def t27_b64_basic(self) -> str:
        user = self.pick([*self.users, "ci-bot", "edi-partner"])
        return base64.b64encode(f"{user}:{self.t27_pw()}".encode()).decode()

    # ------------------------------------------------------------------ positives: URIs
    def t27_pg_uri(self) -> str:
        scheme = self.pick(["postgres", "postgresql", "postgresql+psycopg2"])
        return f"{scheme}://{self.pick(self.users)}:{self.t27_url_pw()}@{self._host()}:5432/{self.pick(['tracking', 'wms', 'routes', 'customs'])}"

    def t27_amqp_uri(self) -> str:
        return f"amqps://{self.pick(self.users)}:{self.t27_url_pw()}@mq.{self.pick(['ham', 'rtm', 'sgp', 'gru'])}.htl.internal:5671/{self.pick(['edi', 'events', '%2F'])}"

    def t27_mongo_uri(self) -> str:
        return f"mongodb+srv://{self.pick(self.users)}:{self.t27_url_pw()}@cluster0.{self.s(5, LOWNUM)}.mongodb.net/telemetry?retryWrites=true&w=majority"

    def t27_redis_uri(self) -> str:
        return f"rediss://default:{self.s(32, ALNUM)}@redis-{self.s(5, DIGITS)}.c{self.s(3, DIGITS)}.eu-central-1-2.ec2.cloud.redislabs.com:{self.s(5, DIGITS)}"

    def t27_sftp_uri(self) -> str:
        return f"sftp://{self.pick(['htl_edi', 'hvnr', 'HTLPROD'])}:{self.t27_url_pw()}@{self.pick(['sftp.ect.nl', 'edi.psa.com.sg', 'ftp.santosbrasil.com.br', 'b2b.hhla.de'])}/inbound"

    def t27_mssql_connstr(self) -> str:
        return f"Server=tcp:{self._host()},1433;Initial Catalog=Customs;User ID={self.pick(self.users)};Password={self.t27_pw()};Encrypt=True;"

    def t27_azure_storage(self) -> str:
        return f"DefaultEndpointsProtocol=https;AccountName=htl{self.s(6, LOWNUM)};AccountKey={self._b64(64)};EndpointSuffix=core.windows.net"

    def t27_azure_sb(self) -> str:
        return f"Endpoint=sb://htl-{self.pick(['reefer', 'edi', 'tracking'])}.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={self._b64(32)}"

    def t27_iothub_device(self) -> str:
        return f"HostName=htl-reefer-hub.azure-devices.net;DeviceId=RF-{self.s(7, DIGITS)};SharedAccessKey={self._b64(32)}"

    def t27_sentry_dsn(self) -> str:
        return (
            f"https://{self.s(32, HEX)}@o{self.s(6, DIGITS)}.ingest.sentry.io/{self.s(7, DIGITS)}"
        )

    # ------------------------------------------------------------------ positives: tokens
    def t27_generic_key(self) -> str:
        shape = self.rng.randrange(5)
        if shape == 0:
            return self.s(32, HEX)
        if shape == 1:
            return self.s(40, ALNUM)
        if shape == 2:
            return self._b64(32, urlsafe=True, pad=False)
        if shape == 3:
            return "htl_live_" + self.s(32, ALNUM)
        return self.s(48, LOWNUM)

    def t27_hex_secret(self) -> str:
        return self.s(self.rng.choice([64, 64, 128]), HEX)

    def t27_b64_secret(self) -> str:
        return self._b64(self.rng.choice([32, 48, 64]))

    def t27_github(self) -> str:
        return self._crc_token(self.pick(["ghp", "ghp", "gho", "ghs"]))

    def t27_gitlab(self) -> str:
        return "glpat-" + self.s(20, URLSAFE)

    def t27_npm(self) -> str:
        return self._crc_token("npm")

    def t27_slack_bot(self) -> str:
        return f"xoxb-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-{self.s(24, ALNUM)}"

    def t27_slack_webhook(self) -> str:
        return f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}/B{self.s(10, UPNUM)}/{self.s(24, ALNUM)}"

    def t27_teams_webhook(self) -> str:
        return (
            f"https://havnortideway.webhook.office.com/webhookb2/{self._uuid()}@{self._uuid()}"
            f"/IncomingWebhook/{self.s(32, HEX)}/{self._uuid()}"
        )

    def t27_aws_pair(self) -> str:
        key_id = "AKIA" + self.s(16, string.ascii_uppercase + "234567")
        secret = self.s(1, ALNUM) + self.s(39, ALNUM + "/+")
        return f"aws_access_key_id = {key_id}\naws_secret_access_key = {secret}"

    def t27_aws_secret(self) -> str:
        return self.s(1, ALNUM) + self.s(39, ALNUM + "/+")

    def t27_google_maps(self) -> str:
        return "AIza" + self.s(35, URLSAFE)

    def t27_here_key(self) -> str:
        return self.s(43, URLSAFE)

    def t27_mapbox_sk(self) -> str:
        payload = base64.urlsafe_b64encode(
            json.dumps({"u": "havnor-tideway", "a": self.s(25, LOWNUM)}).encode()
        ).decode()
        return f"sk.{payload.rstrip('=')}.{self.s(22, URLSAFE)}"

    def t27_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def t27_twilio_token(self) -> str:
        return self.s(32, HEX)

    def t27_datadog(self) -> str:
        return self.s(32, HEX)

    def t27_vault_token(self) -> str:
        return "hvs." + self.s(24, ALNUM)

    def t27_artifactory(self) -> str:
        return "AKCp" + self.s(69, ALNUM)

    def t27_openai(self) -> str:
        return f"sk-proj-{self.s(58, URLSAFE)}T3BlbkFJ{self.s(58, URLSAFE)}"

    def t27_adyen(self) -> str:
        return "AQE" + self.s(60, ALNUM) + "=-" + self._b64(32) + "-" + self.s(16, ALNUM)

    def t27_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

        header = part({"alg": self.pick(["HS256", "RS256"]), "typ": "JWT"})
        payload = part(
            {
                "sub": self.pick(self.users),
                "iss": "https://auth.havnor-tideway.com",
                "exp": 1900000000 + self.rng.randrange(10**6),
            }
        )
        return f"{header}.{payload}.{self._b64(32, urlsafe=True, pad=False)}"

    def t27_fcm_key(self) -> str:
        return f"AAAA{self.s(7, URLSAFE)}:APA91b{self.s(134, URLSAFE)}"

    def t27_pagerduty(self) -> str:
        return "u+" + self.s(18, URLSAFE)

    def t27_client_secret(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.s(3, ALNUM) + "8Q~" + self.s(31, URLSAFE + ".~")
        if shape == 1:
            return self.s(36, ALNUM + "-_")
        return "GOCSPX-" + self.s(28, URLSAFE)

    def t27_lora_appkey(self) -> str:
        return self.s(32, HEXU)

    def t27_mqtt_pw(self) -> str:
        if self.rng.randrange(2):
            return self.s(24, ALNUM)
        return "-".join(self.pick(self.words) for _ in range(3)) + self.s(2, DIGITS)

    # ------------------------------------------------------------------ positives: keys
    def t27_rsa_key(self) -> str:
        return self._armor("RSA PRIVATE KEY", 48 * 12)

    def t27_pkcs8_key(self) -> str:
        return self._armor("PRIVATE KEY", 48 * 14)

    def t27_openssh_key(self) -> str:
        return self._armor("OPENSSH PRIVATE KEY", 48 * 7)

    def t27_ec_key(self) -> str:
        return self._armor("EC PRIVATE KEY", 120)

    def t27_json_key(self) -> str:
        return self._armor("PRIVATE KEY", 48 * 14).replace("\n", "\\n") + "\\n"

    # ------------------------------------------------------------------ negatives: identifiers
    def t27_container_no(self) -> str:
        owner = self.pick(["HTLU", "MSKU", "MSCU", "CMAU", "HLXU", "TGHU", "OOLU"])
        serial = self.s(6, DIGITS)
        total = sum(
            (ISO6346[c] if c.isalpha() else int(c)) * (2**i) for i, c in enumerate(owner + serial)
        )
        return f"{owner}{serial}{total % 11 % 10}"

    def t27_bol(self) -> str:
        return self.pick(["HTLB", "HVNR", "HLCU", "MAEU"]) + self.s(
            self.rng.choice([9, 10, 12]), UPNUM
        )

    def t27_imo(self) -> str:
        digits = [self.rng.randrange(1, 10)] + [self.rng.randrange(10) for _ in range(5)]
        check = sum(d * w for d, w in zip(digits, [7, 6, 5, 4, 3, 2], strict=True)) % 10
        return "IMO " + "".join(map(str, digits)) + str(check)

    def t27_locode(self) -> str:
        return self.pick(["DEHAM", "NLRTM", "SGSIN", "BRSSZ", "BEANR", "CNSHA", "USLAX", "BRPNG"])

    def t27_edi_ref(self) -> str:
        return self.pick(
            [
                self.s(14, DIGITS),
                "HTL" + self.s(11, DIGITS),
                self.s(9, DIGITS),
                "ICR" + self.s(10, UPNUM),
            ]
        )

    def t27_uuid_id(self) -> str:
        return self._uuid()

    def t27_imei(self) -> str:
        digits = [self.rng.randrange(10) for _ in range(14)]
        total = 0
        for i, d in enumerate(digits):
            x = d * 2 if i % 2 else d
            total += x - 9 if x > 9 else x
        return "".join(map(str, digits)) + str((10 - total % 10) % 10)

    def t27_dev_eui(self) -> str:
        return self.s(16, HEXU)

    def t27_sha256(self) -> str:
        return hashlib.sha256(self.rng.randbytes(32)).hexdigest()

    def t27_git_sha(self) -> str:
        return self.s(40, HEX)

    def t27_image_digest(self) -> str:
        return "sha256:" + self.t27_sha256()

    def t27_sri(self) -> str:
        return "sha512-" + self._b64(64)

    def t27_md5(self) -> str:
        return hashlib.md5(self.rng.randbytes(16)).hexdigest()

    def t27_tracking_no(self) -> str:
        return self.pick(
            ["1Z" + self.s(16, UPNUM), "JD" + self.s(18, DIGITS), "HTL-TRK-" + self.s(10, UPNUM)]
        )

    def t27_sap_client(self) -> str:
        return self.pick(["100", "200", "300", "800", "001"])

    def t27_gmaps_client_id(self) -> str:
        return f"{self.s(12, DIGITS)}-{self.s(32, LOWNUM)}.apps.googleusercontent.com"

    def t27_mapbox_pk(self) -> str:
        payload = base64.urlsafe_b64encode(
            json.dumps({"u": "havnor-tideway", "a": self.s(25, LOWNUM)}).encode()
        ).decode()
        return f"pk.{payload.rstrip('=')}.{self.s(22, URLSAFE)}"

    def t27_aws_example(self) -> str:
        return self.pick(
            [
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "AKIAI44QH8DHBEXAMPLE",
            ]
        )

    def t27_account_id(self) -> str:
        return self.s(12, DIGITS)

    # ------------------------------------------------------------------ negatives: not secret
    def t27_placeholder(self) -> str:
        return self.pick(
            [
                "changeme",
                "<password>",
                "<YOUR_API_KEY>",
                "xxxxxxxx",
                "REPLACE_ME",
                "your-secret-here",
                "${PASSWORD}",
                "TBD",
                "********",
                "<vul-hier-in>",
                "<senha>",
                "<einsetzen>",
                "dummy",
                "",
            ]
        )

    def t27_env_ref(self) -> str:
        return self.pick(
            [
                "${DB_PASSWORD}",
                "${TRACKING_DB_PASS:?required}",
                "$(EDI_SFTP_PASSWORD)",
                "%SAP_RFC_PASSWD%",
                "${env:HERE_API_KEY}",
                "${{ secrets.ROUTEOPT_TOKEN }}",
                "$CUSTOMS_API_KEY",
                "{{ .Values.reefer.mqttPassword }}",
                "{{ vault_sap_password }}",
                "#{OracleBoPassword}",
            ]
        )

    def t27_code_ref(self) -> str:
        return self.pick(
            [
                'os.environ["TRACKING_DB_PASSWORD"]',
                'os.Getenv("EDI_SFTP_PASSWORD")',
                'System.getenv("SAP_JCO_PASSWD")',
                "process.env.HERE_API_KEY",
                'Environment.GetEnvironmentVariable("CUSTOMS_BROKER_SECRET")',
                "ENV.fetch('BROKER_API_KEY')",
                "getenv('WMS_DB_PASSWORD')",
                'std::env::var("ROBOT_FLEET_TOKEN")?',
                'config.getString("reefer.mqtt.password")',
                "BuildConfig.MAPS_API_KEY",
            ]
        )

    def t27_store_ref(self) -> str:
        return self.pick(
            [
                "vault:secret/data/edi/sftp#password",
                "op://Logistics-Prod/Oracle BO/password",
                "arn:aws:secretsmanager:eu-central-1:"
                + self.s(12, DIGITS)
                + ":secret:prod/tracking/db-"
                + self.s(6, ALNUM),
                "@Microsoft.KeyVault(SecretUri=https://kv-htl-prod.vault.azure.net/secrets/iothub-conn/)",
                "projects/htl-routeopt/secrets/here-api-key/versions/latest",
                "ssm:/htl/prod/customs/api-key",
                "azurekeyvault://kv-htl-sgp/sap-rfc-password",
            ]
        )

    def t27_jasypt(self) -> str:
        return f"ENC({self._b64(self.rng.choice([24, 32, 48]))})"

    def t27_ansible_vault(self) -> str:
        hexbody = self.s(80 * 5, HEX)
        rows = [hexbody[i : i + 80] for i in range(0, len(hexbody), 80)]
        return "!vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  " + "\n  ".join(rows)

    def t27_sops(self) -> str:
        return f"ENC[AES256_GCM,data:{self._b64(self.rng.randrange(12, 40))},iv:{self._b64(32)},tag:{self._b64(16)},type:str]"

    def t27_kms_blob(self) -> str:
        return "AQICAHh" + self._b64(150)

    def t27_sealed(self) -> str:
        return "AgB" + self._b64(300)

    def t27_bcrypt(self) -> str:
        return "$2a$10$" + self.s(53, CRYPT64)

    def t27_argon2(self) -> str:
        return (
            f"$argon2id$v=19$m=65536,t=3,p=4${self._b64(16, pad=False)}${self._b64(32, pad=False)}"
        )

    def t27_oracle_verifier(self) -> str:
        return f"S:{self.s(60, HEXU)};T:{self.s(160, HEXU)}"

    def t27_pbkdf2(self) -> str:
        return f"pbkdf2_sha256$720000${self.s(22, ALNUM)}${self._b64(32)}"

    def t27_public_key(self) -> str:
        return self._armor("PUBLIC KEY", 294)

    def t27_certificate(self) -> str:
        return self._armor("CERTIFICATE", 48 * 16)

    def t27_ssh_pub(self) -> str:
        body = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + self.rng.randbytes(36)).decode()
        return f"ssh-ed25519 {body} {self.pick(self.users)}@htl"

    def t27_known_host(self) -> str:
        body = base64.b64encode(
            b"\x00\x00\x00\x13ecdsa-sha2-nistp256\x00\x00\x00\x08nistp256\x00\x00\x00\x41\x04"
            + self.rng.randbytes(64)
        ).decode()
        return f"ecdsa-sha2-nistp256 {body}"

    def t27_fingerprint(self) -> str:
        return self.pick(
            [
                "SHA256:" + self._b64(32, pad=False),
                ":".join(self.s(2, HEXU) for _ in range(20)),
                self.s(40, HEXU),
            ]
        )

    def t27_redacted(self) -> str:
        return self.pick(
            [
                "[REDACTED]",
                "***",
                "<redacted>",
                "****" + self.s(4, ALNUM),
                "[FILTERED]",
                "xxxxxxxx" + self.s(4, HEX),
                "(hidden)",
                "[geschwärzt]",
            ]
        )

    def t27_i18n(self) -> str:
        return self.pick(
            [
                "Passwort vergessen?",
                "Das Passwort muss mindestens 12 Zeichen lang sein",
                "Wachtwoord vergeten?",
                "Voer uw wachtwoord in",
                "Esqueceu sua senha?",
                "A senha deve conter letras e números",
                "Kata laluan tidak sah",
                "请输入密码",
                "Invalid password. Please try again.",
                "Token abgelaufen, bitte erneut anmelden",
                "Het wachtwoord is onjuist",
                "Senha do motorista",
            ]
        )

    def t27_doc_url(self) -> str:
        return self.pick(
            [
                "https://user:password@example.com/edi",
                "postgres://user:pass@localhost:5432/tracking",
                "amqp://guest:guest@localhost:5672/",
                "sftp://partner:secret@sftp.example.org/in",
                "https://docs.havnor-tideway.com/api/auth#tokens",
                "mongodb://USER:PASSWORD@HOST:27017/db",
            ]
        )

    def t27_test_fake(self) -> str:
        return self.pick(
            [
                "fake-token-for-tests",
                "test_password",
                "dummy-secret",
                "not-a-real-key",
                "testtesttest",
                "unit-test-only",
                "sk_test_fake",
                "FAKE_HERE_KEY",
            ]
        )

    def t27_policy(self) -> str:
        return self.pick(["12", "90d", "true", "3", "P90D", "min_length=12", "5"])

    def t27_secret_name(self) -> str:
        return self.pick(
            [
                "tracking-db-credentials",
                "edi-sftp-auth",
                "reefer-mqtt",
                "sap-rfc-secret",
                "customs-broker-api",
                "regcred",
                "here-maps-key",
            ]
        )

    def t27_edi_password_seg(self) -> str:
        # UNB segment's recipient reference/password field in test interchanges
        return self.pick(["PASSWORD", "TEST", "HTLTEST", "0", "ZZZ"])

    def t27_pw_field(self) -> str:
        return self.pick(
            ["password", "passwd", "pwd", "client_secret", "apiKey", "senha", "kennwort"]
        )


VALUES = Tune27Values


TEMPLATES: list[evalset.Template] = [
    # ================================================================ tracking services
    (
        "container-tracking/.env",
        """# container-tracking service - local dev against the shared staging DB
APP_ENV=staging
HTTP_PORT=8080
TRACKING_DB_URL={V}
KAFKA_BROKERS=kafka-1.stg.htl.internal:9092,kafka-2.stg.htl.internal:9092
AIS_FEED_URL=https://ais.stg.htl.internal/v2/positions
LOG_LEVEL=debug
""",
        "t27_pg_uri",
        True,
    ),
    (
        "container-tracking/.env.example",
        """APP_ENV=local
TRACKING_DB_URL=postgres://tracking:{V}@localhost:5432/tracking
AIS_FEED_TOKEN={V2}
# ask #team-tracking-hh for real values, never commit them
""",
        "t27_placeholder",
        False,
    ),
    (
        "container-tracking/internal/config/config.go",
        """package config

import (
	"os"
	"time"
)

type Config struct {
	DatabaseURL  string
	AISToken     string
	PollInterval time.Duration
}

func Load() Config {
	return Config{
		DatabaseURL:  {V},
		AISToken:     {V2},
		PollInterval: 30 * time.Second,
	}
}

var _ = os.Getenv
""",
        "t27_code_ref",
        False,
    ),
    (
        "container-tracking/internal/ais/client.go",
        """package ais

// Client polls the AIS aggregator for vessel positions (Hamburg team).
const (
	baseURL     = "https://api.aishub-proxy.htl.internal/v2"
	defaultUser = "htl-tracking"
	apiKey      = "{V}"
)

func NewDefault() *Client {
	return &Client{base: baseURL, user: defaultUser, key: apiKey}
}
""",
        "t27_generic_key",
        True,
    ),
    (
        "container-tracking/internal/model/container_test.go",
        """package model

import "testing"

func TestCheckDigit(t *testing.T) {
	cases := []string{"{V}", "{V2}", "{V3}", "{V4}"}
	for _, c := range cases {
		if !ValidISO6346(c) {
			t.Errorf("expected %s to be valid", c)
		}
	}
}
""",
        "t27_container_no",
        False,
    ),
    (
        "container-tracking/src/main/resources/application-prod.yml",
        """spring:
  datasource:
    url: jdbc:postgresql://pg-tracking.prod.htl.internal:5432/tracking
    username: tracking_app
    password: {V}
  kafka:
    bootstrap-servers: kafka.prod.htl.internal:9093
    properties:
      security.protocol: SASL_SSL
      sasl.mechanism: SCRAM-SHA-512
      sasl.jaas.config: org.apache.kafka.common.security.scram.ScramLoginModule required username="tracking" password="{V2}";
management:
  endpoints.web.exposure.include: health,info
""",
        "t27_pw",
        True,
    ),
    (
        "container-tracking/src/main/resources/application.yml",
        """spring:
  datasource:
    url: jdbc:postgresql://${DB_HOST:localhost}:5432/tracking
    username: ${DB_USER:tracking_app}
    password: {V}
  kafka:
    properties:
      sasl.jaas.config: org.apache.kafka.common.security.scram.ScramLoginModule required username="tracking" password="{V2}";
""",
        "t27_env_ref",
        False,
    ),
    (
        "container-tracking/src/main/resources/application-hh.properties",
        """# Hamburg terminal adapter
tos.ctb.base-url=https://tos-gw.ctb.hhla-partner.de/api
tos.ctb.username=HTL_TRACK
tos.ctb.password={V}
tos.ctb.poll-cron=0 */5 * * * *
jasypt.encryptor.algorithm=PBEWITHHMACSHA512ANDAES_256
""",
        "t27_jasypt",
        False,
    ),
    (
        "container-tracking/src/main/resources/application-sgp.properties",
        """tos.psa.base-url=https://portnet-api.psa.com.sg/b2b
tos.psa.client-id=HTL-SG-01
tos.psa.client-secret={V}
tos.psa.timeout-ms=15000
""",
        "t27_client_secret",
        True,
    ),
    (
        "container-tracking/src/test/resources/fixtures/events.json",
        """[
  {"eventId": "{V}", "container": "HTLU4417205", "type": "GATE_OUT", "locode": "NLRTM"},
  {"eventId": "{V2}", "container": "HTLU4417205", "type": "LOAD", "locode": "NLRTM"},
  {"eventId": "{V3}", "container": "HTLU4417205", "type": "DISCHARGE", "locode": "SGSIN"},
  {"eventId": "{V4}", "container": "HTLU4417205", "type": "GATE_IN", "locode": "SGSIN"}
]
""",
        "t27_uuid_id",
        False,
    ),
    (
        "container-tracking/README.md",
        """# container-tracking

Ingests terminal events (EDI CODECO/COARRI, TOS webhooks) and AIS positions and exposes
`/v1/containers/{id}/events`.

## Local setup

```bash
export TRACKING_DB_URL={V}
make run
```

Vessel lookups accept IMO numbers (7 digits with a check digit).
""",
        "t27_doc_url",
        False,
    ),
    # ================================================================ EDI / EDIFACT
    (
        "edi-gateway/config/partners.yaml",
        """partners:
  - id: ECT-RTM
    protocol: sftp
    host: sftp.ect.nl
    port: 22
    username: htl_edi
    password: "{V}"
    inbound: /out/coarri
    messages: [COARRI, CODECO]
  - id: PSA-SIN
    protocol: sftp
    host: edi.psa.com.sg
    username: HVNR
    password: "{V2}"
    messages: [BAPLIE, COPRAR]
""",
        "t27_pw",
        True,
    ),
    (
        "edi-gateway/config/partners.staging.yaml",
        """partners:
  - id: ECT-RTM
    protocol: sftp
    host: sftp-test.ect.nl
    username: htl_edi_t
    password: {V}
  - id: SANTOS-BR
    protocol: ftps
    host: ftp.santosbrasil.com.br
    username: htl
    password: {V2}
""",
        "t27_store_ref",
        False,
    ),
    (
        "edi-gateway/samples/CODECO_in_NLRTM.edi",
        """UNA:+.? '
UNB+UNOA:2+ECTDELTA:ZZZ+HVNR:ZZZ+240517:1012+{V}'
UNH+1+CODECO:D:95B:UN:ITG14'
BGM+34+GO{V2}+9'
TDT+1++3++HTL:172:20'
NAD+CF+HTL:160:ZZZ'
EQD+CN+HTLU4417205+45G1:102:5++2+5'
LOC+165+NLRTM:139:6+ECTDELTA:TER:ZZZ'
UNT+8+1'
UNZ+1+{V}'
""",
        "t27_edi_ref",
        False,
    ),
    (
        "edi-gateway/src/main/resources/openas2/config.xml",
        """<openas2>
  <certificates classname="org.openas2.cert.PKCS12CertificateFactory"
                filename="%home%/as2_certs.p12"
                password="{V}"
                interval="300"/>
  <partnerships classname="org.openas2.partner.XMLPartnershipFactory" filename="%home%/partnerships.xml"/>
  <processor classname="org.openas2.processor.DefaultProcessor" pendingMDN="%home%/../data/pendingMDN3"/>
</openas2>
""",
        "t27_pw",
        True,
    ),
    (
        "edi-gateway/src/main/resources/openas2/partnerships.xml",
        """<partnerships>
  <partner name="HVNR" as2_id="HVNR-AS2" x509_alias="hvnr" email="edi@havnor-tideway.com"/>
  <partner name="HHLA" as2_id="HHLA-CTA" x509_alias="hhla" email="edi@hhla.de"/>
  <partnership name="HVNR-to-HHLA">
    <sender name="HVNR"/>
    <receiver name="HHLA"/>
    <attribute name="as2_url" value="https://as2.hhla.de:4080"/>
    <attribute name="encrypt" value="3DES"/>
    <attribute name="sign" value="SHA256"/>
    <attribute name="certificate_fingerprint" value="{V}"/>
  </partnership>
</partnerships>
""",
        "t27_fingerprint",
        False,
    ),
    (
        "edi-gateway/certs/hhla_as2_public.pem",
        """# HHLA AS2 partner certificate, exchanged 2024-03 (public)
{V}
""",
        "t27_certificate",
        False,
    ),
    (
        "edi-gateway/certs/hvnr_as2_signing.key",
        """{V}
""",
        "t27_pkcs8_key",
        True,
    ),
    (
        "edi-gateway/scripts/pull_santos.sh",
        """#!/usr/bin/env bash
# pulls IFTSTA files from Santos Brasil every 10 min (cron on edi-gw-02)
set -euo pipefail
OUT=/data/edi/inbound/santos
sshpass -p '{V}' sftp -oBatchMode=no -oStrictHostKeyChecking=no htl@ftp.santosbrasil.com.br <<EOF
cd /saida/iftsta
mget *.edi $OUT/
bye
EOF
""",
        "t27_weak_pw",
        True,
    ),
    (
        "edi-gateway/scripts/known_hosts",
        """sftp.ect.nl {V}
edi.psa.com.sg {V2}
b2b.hhla.de {V3}
""",
        "t27_known_host",
        False,
    ),
    (
        "edi-gateway/src/edi_gateway/oftp2.py",
        '''"""OFTP2 session to the Odette network for the automotive logistics customers."""

from dataclasses import dataclass


@dataclass
class OdetteProfile:
    ssid: str = "O0013000000HVNRDE"
    sfid: str = "O0013000000HVNRDE"
    ssid_password: str = "{V}"
    host: str = "oftp.odette-partner.eu"
    port: int = 6619


DEFAULT = OdetteProfile()
''',
        "t27_sap_pw",
        True,
    ),
    (
        "edi-gateway/src/edi_gateway/settings.py",
        """import os

SFTP_HOST = os.environ.get("EDI_SFTP_HOST", "sftp.ect.nl")
SFTP_USER = os.environ.get("EDI_SFTP_USER", "htl_edi")
SFTP_PASSWORD = {V}
AS2_KEYSTORE_PASSWORD = {V2}
""",
        "t27_code_ref",
        False,
    ),
    (
        "edi-gateway/docs/partner-onboarding.nl.md",
        """# Onboarding nieuwe EDI-partner (team Rotterdam)

1. Vraag de partner om hun AS2-ID en certificaat.
2. Maak een SFTP-account aan op `edi-gw-01`:
   - gebruiker: `partner_<code>`
   - wachtwoord: `{V}` (tijdelijk, partner moet het bij eerste login wijzigen)
3. Test met een CODECO-bericht uit `samples/`.
""",
        "t27_weak_pw",
        True,
    ),
    (
        "edi-gateway/docs/partner-onboarding.de.md",
        """# Neuen EDI-Partner anbinden (Team Hamburg)

Zugangsdaten liegen **nicht** im Repo, sondern im Vault unter `{V}`.
Das SFTP-Passwort wird per `vault kv get` gelesen. Beispiel-URL zum Testen: `{V2}`.
""",
        "t27_store_ref",
        False,
    ),
    # ================================================================ terminal operating system integrations
    (
        "tos-integration/src/main/kotlin/com/htl/tos/NavisN4Client.kt",
        """package com.htl.tos

import io.ktor.client.HttpClient

class NavisN4Client(private val http: HttpClient) {
    private val baseUrl = "https://n4.rtm-terminal.nl/apex/api"
    private val user = "htl-ws"
    private val password = "{V}"

    suspend fun unitStatus(unitId: String) = http.get("$baseUrl/units/$unitId") {
        basicAuth(user, password)
    }
}
""",
        "t27_pw",
        True,
    ),
    (
        "tos-integration/src/main/kotlin/com/htl/tos/TosConfig.kt",
        """package com.htl.tos

data class TosConfig(
    val baseUrl: String = System.getenv("N4_BASE_URL") ?: "https://n4.rtm-terminal.nl/apex/api",
    val user: String = System.getenv("N4_USER") ?: "htl-ws",
    val password: String = {V},
)
""",
        "t27_code_ref",
        False,
    ),
    (
        "tos-integration/http/n4.http",
        """### Unit status (Rotterdam TOS)
GET https://n4.rtm-terminal.nl/apex/api/units/HTLU4417205
Authorization: Basic {V}
Accept: application/json

### Vessel visit
GET https://n4.rtm-terminal.nl/apex/api/vesselvisits?facility=RTM
Authorization: Basic {V}
""",
        "t27_b64_basic",
        True,
    ),
    # ================================================================ warehouse robots
    (
        "robot-fleet/controller/config/fleet.toml",
        """[fleet]
site = "SGSIN-DC2"
robots = 48
heartbeat_ms = 250

[fleet.vendor_api]
base_url = "https://fleet.autostore-partner.com/api/v3"
api_key = "{V}"

[fleet.safety]
estop_topic = "safety/estop"
""",
        "t27_hex_secret",
        True,
    ),
    (
        "robot-fleet/controller/config/fleet.example.toml",
        """[fleet]
site = "DEHAM-DC1"

[fleet.vendor_api]
base_url = "https://fleet.autostore-partner.com/api/v3"
api_key = "{V}"
""",
        "t27_placeholder",
        False,
    ),
    (
        "robot-fleet/controller/src/auth.rs",
        """use std::env;

pub struct FleetAuth {
    pub token: String,
}

impl FleetAuth {
    pub fn from_env() -> anyhow::Result<Self> {
        let token = {V};
        Ok(Self { token })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn uses_fixture_token() {
        let t = "{V2}";
        assert!(!t.is_empty());
    }
}
""",
        "t27_code_ref",
        False,
    ),
    (
        "robot-fleet/controller/src/bin/calibrate.rs",
        """// one-off calibration tool for the Sao Paulo DC shuttles
const MQTT_HOST: &str = "mqtt.gru-dc1.htl.local";
const MQTT_USER: &str = "calib";
const MQTT_PASS: &str = "{V}";

fn main() {
    let opts = rumqttc::MqttOptions::new("calib-01", MQTT_HOST, 8883);
    let _ = (opts, MQTT_USER, MQTT_PASS);
}
""",
        "t27_mqtt_pw",
        True,
    ),
    (
        "robot-fleet/ros/config/robots.yaml",
        """robots:
  - id: AMR-0031
    mac: 3C:71:BF:0A:22:41
    firmware_sha256: {V}
  - id: AMR-0032
    mac: 3C:71:BF:0A:22:9E
    firmware_sha256: {V2}
  - id: AMR-0033
    mac: 3C:71:BF:0A:23:07
    firmware_sha256: {V3}
""",
        "t27_sha256",
        False,
    ),
    (
        "robot-fleet/controller/fixtures/wms_session.json",
        """{
  "session": {
    "user": "picker-bot",
    "access_token": "{V}",
    "expires_in": 3600
  }
}
""",
        "t27_jwt",
        True,
    ),
    (
        "robot-fleet/docs/runbook-estop.md",
        """# E-Stop recovery (DC Singapore)

1. Confirm the zone is clear, reset physical E-stop.
2. Log into the fleet console `https://fleet-console.sgp.htl.internal` as `ops-sg`
   (password in 1Password, entry `{V}`).
3. Re-home robots: `fleetctl rehome --zone B`.
""",
        "t27_store_ref",
        False,
    ),
    # ================================================================ route optimisation
    (
        "route-optimizer/optimizer/providers/here.py",
        '''"""HERE Routing v8 adapter used by the nightly drayage planner."""

import requests

HERE_API_KEY = "{V}"
BASE = "https://router.hereapi.com/v8/routes"


def route(origin, dest, truck=True):
    params = {"origin": origin, "destination": dest, "transportMode": "truck" if truck else "car",
              "apiKey": HERE_API_KEY, "return": "summary"}
    return requests.get(BASE, params=params, timeout=10).json()
''',
        "t27_here_key",
        True,
    ),
    (
        "route-optimizer/optimizer/providers/google.py",
        """import googlemaps

# Google Maps Platform key restricted to the route-optimizer egress IPs (GCP project htl-routeopt)
gmaps = googlemaps.Client(key="{V}")


def distance_matrix(origins, destinations):
    return gmaps.distance_matrix(origins, destinations, mode="driving")
""",
        "t27_google_maps",
        True,
    ),
    (
        "route-optimizer/optimizer/settings.py",
        """from pydantic_settings import BaseSettings


class Settings(BaseSettings):
    here_api_key: str = "{V}"
    google_maps_key: str = "{V2}"
    solver_time_limit_s: int = 120
    depots: list[str] = ["DEHAM", "NLRTM"]
""",
        "t27_test_fake",
        False,
    ),
    (
        "route-optimizer/notebooks/eval_solver.ipynb",
        """{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 3,
   "metadata": {},
   "outputs": [],
   "source": [
    "import psycopg2\\n",
    "conn = psycopg2.connect(\\"{V}\\")\\n",
    "df = pd.read_sql(\\"select * from stops where depot='NLRTM'\\", conn)"
   ]
  }
 ],
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "t27_pg_uri",
        True,
    ),
    (
        "route-optimizer/web/src/map.ts",
        """import mapboxgl from 'mapbox-gl';

// public token, URL-restricted to routes.havnor-tideway.com
mapboxgl.accessToken = '{V}';

export const map = new mapboxgl.Map({ container: 'map', style: 'mapbox://styles/mapbox/light-v11' });
""",
        "t27_mapbox_pk",
        False,
    ),
    (
        "route-optimizer/scripts/upload_tiles.sh",
        """#!/bin/sh
# uploads the depot geofences to Mapbox as a tileset (needs uploads:write scope)
export MAPBOX_ACCESS_TOKEN="{V}"
tilesets upload-source havnor-tideway depots geofences.geojson.ld
""",
        "t27_mapbox_sk",
        True,
    ),
    (
        "route-optimizer/openai_eta/explain.py",
        """# experiment: natural-language ETA explanations for the customer portal (Rotterdam hackathon)
from openai import OpenAI

client = OpenAI(api_key="{V}")


def explain(delay_minutes: int, cause: str) -> str:
    r = client.chat.completions.create(model="gpt-4o-mini", messages=[
        {"role": "user", "content": f"Explain a {delay_minutes} min delay caused by {cause}"}])
    return r.choices[0].message.content
""",
        "t27_openai",
        True,
    ),
    # ================================================================ customs brokers
    (
        "customs-broker-client/src/Htl.Customs/appsettings.json",
        """{
  "Logging": { "LogLevel": { "Default": "Information" } },
  "ConnectionStrings": {
    "Customs": "{V}"
  },
  "Broker": {
    "BaseUrl": "https://api.zollbroker-partner.de/v2",
    "Timeout": "00:00:30"
  }
}
""",
        "t27_mssql_connstr",
        True,
    ),
    (
        "customs-broker-client/src/Htl.Customs/appsettings.Development.json",
        """{
  "ConnectionStrings": {
    "Customs": "Server=localhost,1433;Initial Catalog=Customs;User ID=sa;Password={V};TrustServerCertificate=True"
  },
  "Broker": { "ApiKey": "{V2}" }
}
""",
        "t27_env_ref",
        False,
    ),
    (
        "customs-broker-client/src/Htl.Customs/BrokerClient.cs",
        """using System.Net.Http;
using System.Net.Http.Headers;

namespace Htl.Customs;

public sealed class BrokerClient
{
    private const string ClientId = "htl-customs-de";
    private const string ClientSecret = "{V}";
    private readonly HttpClient _http;

    public BrokerClient(HttpClient http)
    {
        _http = http;
        _http.DefaultRequestHeaders.Add("X-Client-Id", ClientId);
        _http.DefaultRequestHeaders.Add("X-Client-Secret", ClientSecret);
    }
}
""",
        "t27_client_secret",
        True,
    ),
    (
        "customs-broker-client/src/Htl.Customs/Options.cs",
        """namespace Htl.Customs;

public class BrokerOptions
{
    public string BaseUrl { get; set; } = "https://api.zollbroker-partner.de/v2";
    public string ApiKey { get; set; } = {V};
    public string SigningSecret { get; set; } = {V2};
}
""",
        "t27_code_ref",
        False,
    ),
    (
        "customs-br/siscomex/config.php",
        """<?php
// Integração Siscomex / Portal Único - equipe São Paulo
return [
    'endpoint' => 'https://portalunico.siscomex.gov.br/portal/api',
    'certificado' => '/etc/htl/certs/e-cnpj-a1.pfx',
    'certificado_senha' => '{V}',
    'cnpj' => '12.345.678/0001-90',
];
""",
        "t27_pw",
        True,
    ),
    (
        "customs-br/siscomex/config.exemplo.php",
        """<?php
return [
    'endpoint' => 'https://val.portalunico.siscomex.gov.br/portal/api',
    'certificado' => '/etc/htl/certs/e-cnpj-a1.pfx',
    'certificado_senha' => {V},
];
""",
        "t27_code_ref",
        False,
    ),
    (
        "customs-br/broker/lib/despachante_client.rb",
        """# frozen_string_literal: true

require 'faraday'

module Despachante
  class Client
    TOKEN = '{V}'

    def initialize(base: 'https://api.despachante-parceiro.com.br/v1')
      @conn = Faraday.new(base) { |f| f.request :authorization, 'Bearer', TOKEN }
    end
  end
end
""",
        "t27_generic_key",
        True,
    ),
    (
        "customs-br/broker/config/locales/pt-BR.yml",
        """pt-BR:
  login:
    password_label: "{V}"
    forgot: "{V2}"
    weak: "{V3}"
    token_expired: "Sessão expirada, entre novamente"
""",
        "t27_i18n",
        False,
    ),
    # ================================================================ driver mobile apps
    (
        "driver-app/android/app/build.gradle.kts",
        """android {
    namespace = "com.havnortideway.driver"
    signingConfigs {
        create("release") {
            storeFile = file("../keystore/driver-release.jks")
            storePassword = "{V}"
            keyAlias = "driver"
            keyPassword = "{V2}"
        }
    }
}
""",
        "t27_pw",
        True,
    ),
    (
        "driver-app/android/app/build.gradle.ci.kts",
        """android {
    signingConfigs {
        create("release") {
            storeFile = file(System.getenv("KEYSTORE_PATH") ?: "release.jks")
            storePassword = {V}
            keyPassword = {V2}
        }
    }
}
""",
        "t27_code_ref",
        False,
    ),
    (
        "driver-app/android/local.properties",
        """sdk.dir=/Users/mweber/Library/Android/sdk
MAPS_API_KEY={V}
""",
        "t27_google_maps",
        True,
    ),
    (
        "driver-app/android/app/google-services.json",
        """{
  "project_info": {
    "project_number": "{V}",
    "project_id": "htl-driver-app"
  },
  "client": [
    {
      "client_info": { "mobilesdk_app_id": "1:{V}:android:4f2c1e0d9b8a7c61" }
    }
  ]
}
""",
        "t27_account_id",
        False,
    ),
    (
        "driver-app/ios/fastlane/Fastfile",
        """default_platform(:ios)

platform :ios do
  lane :beta do
    ENV["FASTLANE_APPLE_APPLICATION_SPECIFIC_PASSWORD"] = "{V}"
    match(type: "appstore", readonly: true)
    build_app(scheme: "HTLDriver")
    upload_to_testflight
  end
end
""",
        "t27_app_specific_pw",
        True,
    ),
    (
        "driver-app/ios/fastlane/Matchfile",
        """git_url("git@github.com:havnor-tideway/ios-certificates.git")
storage_mode("git")
type("appstore")
app_identifier(["com.havnortideway.driver"])
# MATCH_PASSWORD comes from {V}
""",
        "t27_env_ref",
        False,
    ),
    (
        "driver-app/ios/HTLDriver/Config/Secrets.swift",
        """import Foundation

enum Secrets {
    static let pushProxyKey = "{V}"
    static let sentryDSN = "https://public@sentry.htl.internal/4"
}
""",
        "t27_hex_secret",
        True,
    ),
    (
        "driver-app/ios/HTLDriver/Resources/nl.lproj/Localizable.strings",
        """"login.password" = "{V}";
"login.forgot" = "{V2}";
"login.invalid" = "{V3}";
"delivery.pod.signature" = "Handtekening ontvanger";
""",
        "t27_i18n",
        False,
    ),
    (
        "driver-app/rn/src/config.ts",
        """export const config = {
  apiBase: 'https://driver-api.havnor-tideway.com',
  sentryDsn: '{V}',
  otaChannel: 'production',
};
""",
        "t27_sentry_dsn",
        True,
    ),
    (
        "driver-app/rn/src/i18n/de.json",
        """{
  "auth": {
    "password": "Passwort",
    "passwordHint": "{V}",
    "forgot": "{V2}",
    "invalid": "{V3}"
  }
}
""",
        "t27_i18n",
        False,
    ),
    (
        "driver-app/backend/push/fcm.js",
        """const axios = require('axios');

// legacy FCM HTTP API (to be migrated to v1)
const SERVER_KEY = '{V}';

module.exports.send = (token, payload) =>
  axios.post('https://fcm.googleapis.com/fcm/send', { to: token, data: payload }, {
    headers: { Authorization: `key=${SERVER_KEY}` },
  });
""",
        "t27_fcm_key",
        True,
    ),
    (
        "driver-app/backend/.npmrc",
        """@havnor-tideway:registry=https://npm.pkg.github.com
//npm.pkg.github.com/:_authToken={V}
""",
        "t27_github",
        True,
    ),
    (
        "driver-app/backend/package-lock.json",
        """{
  "name": "driver-backend",
  "lockfileVersion": 3,
  "packages": {
    "node_modules/axios": {
      "version": "1.7.2",
      "resolved": "https://registry.npmjs.org/axios/-/axios-1.7.2.tgz",
      "integrity": "{V}"
    },
    "node_modules/jsonwebtoken": {
      "version": "9.0.2",
      "integrity": "{V2}"
    },
    "node_modules/paho-mqtt": {
      "version": "1.1.0",
      "integrity": "{V3}"
    }
  }
}
""",
        "t27_sri",
        False,
    ),
    (
        "driver-app/backend/src/auth/jwt.ts",
        """import jwt from 'jsonwebtoken';

const SIGNING_SECRET = process.env.DRIVER_JWT_SECRET ?? '{V}';

export const sign = (driverId: string) => jwt.sign({ sub: driverId }, SIGNING_SECRET, { expiresIn: '12h' });
""",
        "t27_b64_secret",
        True,
    ),
    (
        "driver-app/backend/src/auth/jwt.test.ts",
        """import { sign } from './jwt';

process.env.DRIVER_JWT_SECRET = '{V}';

test('signs a driver token', () => {
  expect(sign('DRV-1042')).toContain('.');
});
""",
        "t27_test_fake",
        False,
    ),
    # ================================================================ IoT / reefers
    (
        "reefer-iot/gateway/mosquitto/bridge.conf",
        """connection htl-cloud
address mqtt.reefer.htl.internal:8883
bridge_protocol_version mqttv311
remote_username reefer-bridge-sgp
remote_password {V}
topic reefer/+/telemetry out 1
bridge_cafile /etc/mosquitto/ca.crt
""",
        "t27_mqtt_pw",
        True,
    ),
    (
        "reefer-iot/gateway/mosquitto/passwd",
        """reefer-bridge-sgp:{V}
reefer-bridge-rtm:{V2}
reefer-bridge-gru:{V3}
""",
        "t27_argon2",
        False,
    ),
    (
        "reefer-iot/firmware/include/secrets.h",
        """#pragma once
// reefer tracker RT-4 (Sao Paulo team) - prod IoT Hub device credential, rotate on leak
#define IOTHUB_CONN "{V}"
#define TELEMETRY_INTERVAL_S 300
""",
        "t27_iothub_device",
        True,
    ),
    (
        "reefer-iot/firmware/include/secrets.example.h",
        """#pragma once
#define IOTHUB_CONN "HostName=<hub>.azure-devices.net;DeviceId=<id>;SharedAccessKey={V}"
#define DEVICE_IMEI "{V2}"
""",
        "t27_placeholder",
        False,
    ),
    (
        "reefer-iot/lorawan/devices.csv",
        """dev_eui,join_eui,app_key,container
70B3D57ED005A1F2,70B3D57ED0000001,{V},HTLU4417205
""",
        "t27_lora_appkey",
        True,
    ),
    (
        "reefer-iot/ingest/src/main.go",
        """package main

import (
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

func main() {
	opts := mqtt.NewClientOptions().AddBroker("ssl://mqtt.reefer.htl.internal:8883")
	opts.SetUsername("iot_ingest")
	opts.SetPassword("{V}")
	opts.SetClientID("ingest-" + hostname())
	c := mqtt.NewClient(opts)
	_ = c.Connect()
}
""",
        "t27_mqtt_pw",
        True,
    ),
    (
        "reefer-iot/ingest/config/servicebus.yaml",
        """servicebus:
  connectionString: "{V}"
  queue: reefer-alarms
  maxConcurrentCalls: 8
""",
        "t27_azure_sb",
        True,
    ),
    (
        "reefer-iot/ingest/config/servicebus.prod.yaml",
        """servicebus:
  connectionString: "{V}"
  queue: reefer-alarms
""",
        "t27_store_ref",
        False,
    ),
    (
        "reefer-iot/ingest/testdata/telemetry.json",
        """{
  "deviceId": "RF-0048812",
  "imei": "{V}",
  "container": "HTLU4417205",
  "setpointC": -18.0,
  "supplyAirC": -17.6,
  "ts": "2024-06-01T10:22:00Z"
}
""",
        "t27_imei",
        False,
    ),
    (
        "reefer-iot/tools/provision.ps1",
        """# Provision a reefer tracker in IoT Hub (Singapore ops laptop)
param([string]$DeviceId)
$hubOwnerConn = "HostName=htl-reefer-hub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey={V}"
az iot hub device-identity create --device-id $DeviceId --login $hubOwnerConn
""",
        "t27_b64_secret",
        True,
    ),
    (
        "reefer-iot/tools/rotate.ps1",
        """param([string]$DeviceId)
$conn = {V}
az iot hub device-identity renew-key --device-id $DeviceId --key-type primary --login $conn
""",
        "t27_code_ref",
        False,
    ),
    # ================================================================ SAP / Oracle back office
    (
        "sap-bridge/sapnwrfc.ini",
        """DEST=HTL_PRD
ASHOST=sapprd.ham.htl.local
SYSNR=00
CLIENT=100
USER=RFC_TRACK
PASSWD={V}
LANG=EN
""",
        "t27_sap_pw",
        True,
    ),
    (
        "sap-bridge/sapnwrfc.ini.template",
        """DEST=HTL_QAS
ASHOST=sapqas.ham.htl.local
SYSNR=00
CLIENT={V}
USER=RFC_TRACK
PASSWD=${SAP_RFC_PASSWD}
""",
        "t27_sap_client",
        False,
    ),
    (
        "sap-bridge/src/main/resources/jco/HTL_PRD.jcoDestination",
        """jco.client.ashost=sapprd.ham.htl.local
jco.client.sysnr=00
jco.client.client=100
jco.client.user=RFC_BILLING
jco.client.passwd={V}
jco.client.lang=DE
jco.destination.pool_capacity=5
""",
        "t27_sap_pw",
        True,
    ),
    (
        "sap-bridge/python/sync_billing.py",
        """from pyrfc import Connection

conn = Connection(ashost="sapprd.ham.htl.local", sysnr="00", client="100",
                  user="RFC_BILLING", passwd="{V}")
result = conn.call("BAPI_BILLINGDOC_GETLIST", REFDOCRANGE={"SIGN": "I"})
""",
        "t27_sap_pw",
        True,
    ),
    (
        "oracle-bo/tnsnames.ora",
        """HTLBO =
  (DESCRIPTION =
    (ADDRESS = (PROTOCOL = TCP)(HOST = oracle-bo.ham.htl.local)(PORT = 1521))
    (CONNECT_DATA = (SERVICE_NAME = HTLBO.ham.htl.local))
  )
# connect: sqlplus finance_rpt/{V}@HTLBO
""",
        "t27_oracle_pw",
        True,
    ),
    (
        "oracle-bo/scripts/nightly_export.sh",
        """#!/bin/bash
# nightly freight revenue export for controlling (Hamburg)
export ORACLE_SID=HTLBO
sqlplus -s fin_export/{V}@HTLBO <<SQL
SET PAGESIZE 0 FEEDBACK OFF
@/opt/htl/sql/revenue_by_lane.sql
SQL
""",
        "t27_oracle_pw",
        True,
    ),
    (
        "oracle-bo/sql/create_users.sql",
        """-- users for the back office schemas, created by DBA (2023-11)
CREATE USER tracking_ro IDENTIFIED BY "{V}" DEFAULT TABLESPACE users;
GRANT CREATE SESSION TO tracking_ro;
CREATE USER edi_loader IDENTIFIED BY "{V2}" DEFAULT TABLESPACE edi_data;
""",
        "t27_oracle_pw",
        True,
    ),
    (
        "oracle-bo/sql/audit_dump.sql",
        """-- DBA_USERS dump for the 2024 audit (verifiers only)
INSERT INTO audit_users (username, spare4) VALUES ('TRACKING_RO', '{V}');
INSERT INTO audit_users (username, spare4) VALUES ('EDI_LOADER', '{V2}');
INSERT INTO audit_users (username, spare4) VALUES ('FIN_EXPORT', '{V3}');
""",
        "t27_oracle_verifier",
        False,
    ),
    (
        "oracle-bo/plsql/pkg_customs_api.pkb",
        """CREATE OR REPLACE PACKAGE BODY pkg_customs_api AS
  c_endpoint CONSTANT VARCHAR2(200) := 'https://api.zollbroker-partner.de/v2/declarations';
  c_api_key  CONSTANT VARCHAR2(64)  := '{V}';

  PROCEDURE push(p_decl_id NUMBER) IS
    l_req utl_http.req;
  BEGIN
    l_req := utl_http.begin_request(c_endpoint, 'POST');
    utl_http.set_header(l_req, 'X-Api-Key', c_api_key);
  END push;
END pkg_customs_api;
/
""",
        "t27_generic_key",
        True,
    ),
    (
        "oracle-bo/plsql/pkg_wallet.pkb",
        """CREATE OR REPLACE PACKAGE BODY pkg_wallet AS
  -- wallet password is read from the wallet itself; the line below is its name only
  c_wallet_entry CONSTANT VARCHAR2(64) := '{V}';
END pkg_wallet;
/
""",
        "t27_secret_name",
        False,
    ),
    (
        "oracle-bo/sql/wms_users.sql",
        """-- portal users seeded for the Rotterdam DC (hashes from the portal's bcrypt)
INSERT INTO portal_user (login, pw_hash, role) VALUES ('ops-rtm', '{V}', 'OPS');
INSERT INTO portal_user (login, pw_hash, role) VALUES ('planner-rtm', '{V2}', 'PLANNER');
INSERT INTO portal_user (login, pw_hash, role) VALUES ('gate-rtm', '{V3}', 'GATE');
""",
        "t27_bcrypt",
        False,
    ),
    (
        "wms/db/migrations/V12__seed_admin.sql",
        """-- seed admin for the new WMS tenant (Sao Paulo), change after go-live!
INSERT INTO users (email, password, is_admin)
VALUES ('admin@gru.havnor-tideway.com', '{V}', true);
""",
        "t27_weak_pw",
        True,
    ),
    (
        "wms/portal/settings/production.py",
        """from .base import *  # noqa

DEBUG = False
SECRET_KEY = "{V}"
ALLOWED_HOSTS = ["wms.havnor-tideway.com"]
""",
        "t27_generic_key",
        True,
    ),
    (
        "wms/portal/fixtures/users.json",
        """[
  {"model": "auth.user", "pk": 1, "fields": {"username": "ops-sgp", "password": "{V}"}},
  {"model": "auth.user", "pk": 2, "fields": {"username": "ops-ham", "password": "{V2}"}},
  {"model": "auth.user", "pk": 3, "fields": {"username": "ops-gru", "password": "{V3}"}}
]
""",
        "t27_pbkdf2",
        False,
    ),
    # ================================================================ infra: k8s / helm / compose / terraform
    (
        "deploy/k8s/tracking/secret.yaml",
        """apiVersion: v1
kind: Secret
metadata:
  name: tracking-db
  namespace: tracking
type: Opaque
data:
  password: {V}
""",
        "t27_b64_basic",
        True,
    ),
    (
        "deploy/k8s/tracking/sealedsecret.yaml",
        """apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: tracking-db
  namespace: tracking
spec:
  encryptedData:
    password: {V}
    username: {V2}
    host: {V3}
""",
        "t27_sealed",
        False,
    ),
    (
        "deploy/k8s/tracking/deployment.yaml",
        """apiVersion: apps/v1
kind: Deployment
metadata:
  name: container-tracking
spec:
  template:
    spec:
      containers:
        - name: app
          image: ghcr.io/havnor-tideway/container-tracking@{V}
      initContainers:
        - name: migrate
          image: ghcr.io/havnor-tideway/tracking-migrations@{V2}
          env:
            - name: TRACKING_DB_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: tracking-db
                  key: password
""",
        "t27_image_digest",
        False,
    ),
    (
        "deploy/k8s/edi/configmap.yaml",
        """apiVersion: v1
kind: ConfigMap
metadata:
  name: edi-gateway
data:
  EDI_SFTP_HOST: sftp.ect.nl
  EDI_SFTP_USER: htl_edi
  EDI_SFTP_PASSWORD: "{V}"
  AS2_URL: https://as2.hhla.de:4080
""",
        "t27_pw",
        True,
    ),
    (
        "deploy/k8s/reefer/externalsecret.yaml",
        """apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata:
  name: reefer-mqtt
spec:
  secretStoreRef:
    name: azure-kv-sgp
    kind: ClusterSecretStore
  data:
    - secretKey: password
      remoteRef:
        key: {V}
""",
        "t27_secret_name",
        False,
    ),
    (
        "deploy/helm/routeopt/values-prod.yaml",
        """image:
  repository: ghcr.io/havnor-tideway/route-optimizer
  tag: 3.4.1
env:
  HERE_API_KEY: "{V}"
  SOLVER_THREADS: "8"
resources:
  limits: { cpu: "4", memory: 8Gi }
""",
        "t27_here_key",
        True,
    ),
    (
        "deploy/helm/routeopt/values.yaml",
        """image:
  repository: ghcr.io/havnor-tideway/route-optimizer
  tag: latest
env:
  HERE_API_KEY: {V}
  GOOGLE_MAPS_KEY: {V2}
""",
        "t27_env_ref",
        False,
    ),
    (
        "deploy/helm/tracking/values-sgp.yaml",
        """postgresql:
  auth:
    username: tracking
    password: {V}
    postgresPassword: {V2}
    replicationPassword: {V3}
""",
        "t27_sops",
        False,
    ),
    (
        "deploy/compose/docker-compose.dev.yml",
        """services:
  postgres:
    image: postgres:16
    environment:
      POSTGRES_USER: tracking
      POSTGRES_PASSWORD: {V}
    ports: ["5432:5432"]
  rabbit:
    image: rabbitmq:3-management
    environment:
      RABBITMQ_DEFAULT_USER: edi
      RABBITMQ_DEFAULT_PASS: {V2}
""",
        "t27_weak_pw",
        True,
    ),
    (
        "deploy/compose/docker-compose.edi.yml",
        """services:
  edi-gateway:
    image: ghcr.io/havnor-tideway/edi-gateway:2.8.0
    environment:
      AMQP_URL: {V}
      PARTNERS_FILE: /config/partners.yaml
""",
        "t27_amqp_uri",
        True,
    ),
    (
        "infra/terraform/aws/tracking/main.tf",
        """resource "aws_db_instance" "tracking" {
  identifier          = "tracking-prod"
  engine              = "postgres"
  engine_version      = "16.2"
  instance_class      = "db.r6g.large"
  username            = "tracking_admin"
  password            = "{V}"
  skip_final_snapshot = false
}
""",
        "t27_pw",
        True,
    ),
    (
        "infra/terraform/aws/tracking/rds.tf",
        """resource "aws_db_instance" "tracking_replica" {
  identifier = "tracking-prod-ro"
  username   = "tracking_admin"
  password   = {V}
}

variable "db_password" {
  type      = string
  sensitive = true
}
""",
        "tune6_tf_ref",
        False,
    ),
    (
        "infra/terraform/aws/.terraform.lock.hcl",
        """provider "registry.terraform.io/hashicorp/aws" {
  version     = "5.52.0"
  constraints = "~> 5.40"
  hashes = [
    "{V}",
    "{V2}",
    "{V3}",
    "{V4}",
  ]
}
""",
        "tune6_tf_hash",
        False,
    ),
    (
        "infra/terraform/azure/iot/terraform.tfvars",
        """location            = "southeastasia"
iothub_sku           = "S2"
storage_account_conn = "{V}"
""",
        "t27_azure_storage",
        True,
    ),
    (
        "infra/terraform/gcp/routeopt/provider.tf",
        """provider "google" {
  project     = "htl-routeopt"
  region      = "europe-west4"
  credentials = <<EOT
{
  "type": "service_account",
  "project_id": "htl-routeopt",
  "private_key": "{V}",
  "client_email": "terraform@htl-routeopt.iam.gserviceaccount.com"
}
EOT
}
""",
        "t27_json_key",
        True,
    ),
    (
        "infra/ansible/group_vars/edi_gateways/vault.yml",
        """vault_edi_sftp_password: {IV}
""",
        "t27_ansible_vault",
        False,
    ),
    (
        "infra/ansible/group_vars/edi_gateways/main.yml",
        """edi_sftp_user: htl_edi
edi_sftp_password: "{V}"
edi_rabbit_password: "{V2}"
""",
        "t27_env_ref",
        False,
    ),
    (
        "infra/ansible/roles/robot_gw/defaults/main.yml",
        """robot_gw_mqtt_user: robots
robot_gw_mqtt_password: "{{ vault_robot_gw_mqtt_password }}"
robot_gw_ca_fingerprint: "{V}"
""",
        "t27_fingerprint",
        False,
    ),
    (
        "infra/aws/credentials.bak",
        """[htl-tracking-prod]
{V}
region = eu-central-1

[default]
{V2}
""",
        "t27_aws_pair",
        True,
    ),
    (
        "infra/aws/README.md",
        """# AWS accounts

| Account | Id |
|---|---|
| tracking-prod | {V} |
| edi-prod | {V2} |

Example profile (from the AWS docs):

```ini
[example]
aws_access_key_id = AKIAIOSFODNN7EXAMPLE
aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
```
""",
        "t27_account_id",
        False,
    ),
    (
        "infra/bastion/authorized_keys",
        """{V}
{V2}
{V3}
""",
        "t27_ssh_pub",
        False,
    ),
    (
        "infra/bastion/id_ed25519_deploy",
        """{V}
""",
        "t27_openssh_key",
        True,
    ),
    (
        "infra/tls/routes.havnor-tideway.com.key",
        """{V}
""",
        "t27_rsa_key",
        True,
    ),
    (
        "infra/tls/routes.havnor-tideway.com.pub",
        """{V}
""",
        "t27_public_key",
        False,
    ),
    (
        "infra/tls/iot-gw-sgp.key",
        """{V}
""",
        "t27_ec_key",
        True,
    ),
    # ================================================================ CI / Docker
    (
        ".github/workflows/tracking.yml",
        """name: tracking
on: [push]
jobs:
  build:
    runs-on: ubuntu-latest
    env:
      REGISTRY_USER: htl-ci
      REGISTRY_TOKEN: {V}
      SONAR_TOKEN: {V2}
    steps:
      - uses: actions/checkout@v4
      - run: ./gradlew build
""",
        "t27_env_ref",
        False,
    ),
    (
        ".github/workflows/driver-app.yml",
        """name: driver-app
on:
  push:
    branches: [main]
jobs:
  android:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@{V}
      - uses: actions/setup-java@{V2}
      - uses: gradle/actions/setup-gradle@{V3}
        with: { distribution: temurin, java-version: 17 }
      - run: ./gradlew assembleRelease
""",
        "t27_git_sha",
        False,
    ),
    (
        ".gitlab-ci.yml",
        """stages: [build, deploy]

variables:
  DOCKER_DRIVER: overlay2
  ARTIFACTORY_URL: https://htl.jfrog.io/artifactory
  ARTIFACTORY_API_KEY: "{V}"

build:
  stage: build
  script:
    - curl -H "X-JFrog-Art-Api:$ARTIFACTORY_API_KEY" -T target/app.jar "$ARTIFACTORY_URL/libs-release-local/"
""",
        "t27_artifactory",
        True,
    ),
    (
        "ci/Jenkinsfile",
        """pipeline {
  agent { label 'linux-ham' }
  environment {
    SAP_RFC_PASSWD = credentials('sap-rfc-prd')
    GITLAB_TOKEN = '{V}'
  }
  stages {
    stage('Build') { steps { sh 'mvn -B verify' } }
  }
}
""",
        "t27_gitlab",
        True,
    ),
    (
        "ci/jenkins/credentials.xml",
        """<com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
  <scope>GLOBAL</scope>
  <id>sap-rfc-prd</id>
  <username>RFC_TRACK</username>
  <password>{V}</password>
</com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
""",
        "tune6_jenkins_secret",
        False,
    ),
    (
        "ci/azure-pipelines.yml",
        """trigger: [main]
pool: { vmImage: ubuntu-latest }
variables:
  - group: reefer-iot-prod
steps:
  - script: dotnet test
  - task: AzureCLI@2
    inputs:
      azureSubscription: htl-sgp
      inlineScript: |
        az login --service-principal -u 2f1c8b0e-7d44-4f1c-9a3e-6f0d2e5b9c11 -p {V} --tenant havnortideway.onmicrosoft.com
""",
        "t27_client_secret",
        True,
    ),
    (
        "ci/azure-pipelines.prod.yml",
        """steps:
  - task: AzureCLI@2
    inputs:
      inlineScript: |
        az login --service-principal -u $(SP_APP_ID) -p {V} --tenant $(TENANT_ID)
""",
        "t27_env_ref",
        False,
    ),
    (
        "docker/edi-gateway/Dockerfile",
        """FROM eclipse-temurin:21-jre@{V}
WORKDIR /app
COPY target/edi-gateway.jar app.jar
ENV JAVA_OPTS="-Xmx1g"
ENTRYPOINT ["java", "-jar", "app.jar"]
""",
        "t27_image_digest",
        False,
    ),
    (
        "docker/route-optimizer/Dockerfile",
        """FROM python:3.12-slim
WORKDIR /srv
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt \\
    --extra-index-url https://routeopt:{V}@pypi.htl.internal/simple
COPY . .
CMD ["python", "-m", "optimizer.nightly"]
""",
        "t27_url_pw",
        True,
    ),
    (
        "docker/config.json",
        """{
  "auths": {
    "htl.jfrog.io": { "auth": "{V}" },
    "ghcr.io": { "auth": "{V2}" }
  }
}
""",
        "t27_b64_basic",
        True,
    ),
    (
        "renovate.json",
        """{
  "extends": ["config:recommended"],
  "hostRules": [
    { "matchHost": "htl.jfrog.io", "username": "renovate", "password": "{V}" }
  ]
}
""",
        "t27_store_ref",
        False,
    ),
    # ================================================================ ops tooling / chatops
    (
        "ops-tools/alerts/notify.py",
        """import requests

SLACK_WEBHOOK = "{V}"


def notify(text: str) -> None:
    requests.post(SLACK_WEBHOOK, json={"text": text}, timeout=5)
""",
        "t27_slack_webhook",
        True,
    ),
    (
        "ops-tools/alerts/teams.ps1",
        """# posts reefer alarm summaries to the Rotterdam ops channel
$webhook = "{V}"
$body = @{ text = "Reefer alarms: $($alarms.Count)" } | ConvertTo-Json
Invoke-RestMethod -Uri $webhook -Method Post -Body $body -ContentType 'application/json'
""",
        "t27_teams_webhook",
        True,
    ),
    (
        "ops-tools/alerts/slackbot.go",
        """package main

import "github.com/slack-go/slack"

func client() *slack.Client {
	return slack.New("{V}")
}
""",
        "t27_slack_bot",
        True,
    ),
    (
        "ops-tools/alerts/pd_sync.py",
        """import pdpyras

session = pdpyras.APISession("{V}")
for svc in session.iter_all("services"):
    print(svc["name"])
""",
        "t27_pagerduty",
        True,
    ),
    (
        "ops-tools/monitoring/datadog.yaml",
        """api_key: {V}
site: datadoghq.eu
tags:
  - team:tracking
  - region:eu-central-1
""",
        "t27_datadog",
        True,
    ),
    (
        "ops-tools/notify/sms.py",
        """from twilio.rest import Client

ACCOUNT_SID = "AC5f0a7c2d9e4b1a3c8d6e2f0a9b7c4d1e"
AUTH_TOKEN = "{V}"

client = Client(ACCOUNT_SID, AUTH_TOKEN)
""",
        "t27_twilio_token",
        True,
    ),
    (
        "ops-tools/notify/email.js",
        """const sgMail = require('@sendgrid/mail');
sgMail.setApiKey('{V}');

module.exports = (to, subject, html) =>
  sgMail.send({ to, from: 'noreply@havnor-tideway.com', subject, html });
""",
        "t27_sendgrid",
        True,
    ),
    (
        "ops-tools/vault/login.sh",
        """#!/usr/bin/env bash
export VAULT_ADDR=https://vault.htl.internal:8200
export VAULT_TOKEN={V}
vault kv get -field=password secret/edi/sftp
""",
        "t27_vault_token",
        True,
    ),
    (
        "ops-tools/scripts/backup_mongo.sh",
        """#!/bin/bash
# telemetry archive backup (Singapore)
mongodump --uri "{V}" --archive=/backup/telemetry-$(date +%F).gz --gzip
""",
        "t27_mongo_uri",
        True,
    ),
    (
        "ops-tools/scripts/flush_cache.sh",
        """#!/bin/sh
redis-cli -u "{V}" --scan --pattern 'eta:*' | xargs -r redis-cli -u "{V}" del
""",
        "t27_redis_uri",
        True,
    ),
    (
        "ops-tools/scripts/sftp_check.py",
        """import paramiko
from urllib.parse import urlparse

TARGETS = ["{V}"]

for t in TARGETS:
    u = urlparse(t)
    c = paramiko.SSHClient()
    c.connect(u.hostname, username=u.username, password=u.password)
""",
        "t27_sftp_uri",
        True,
    ),
    (
        "ops-tools/payments/adyen.php",
        """<?php
// demurrage & detention card payments on the customer portal
$client = new \\Adyen\\Client();
$client->setXApiKey('{V}');
$client->setEnvironment(\\Adyen\\Environment::LIVE, 'htl');
""",
        "t27_adyen",
        True,
    ),
    (
        "ops-tools/payments/adyen_test.php",
        """<?php
$client = new \\Adyen\\Client();
$client->setXApiKey('{V}');
$client->setEnvironment(\\Adyen\\Environment::TEST);
""",
        "t27_test_fake",
        False,
    ),
    # ================================================================ docs / runbooks / chats / logs
    (
        "docs/runbooks/tracking-db-failover.md",
        """# Tracking DB failover

1. Promote replica: `aws rds promote-read-replica --db-instance-identifier tracking-prod-ro`
2. Update the secret: `kubectl -n tracking create secret generic {V} --from-literal=password=... --dry-run=client -o yaml | kubectl apply -f -`
3. Restart pods.

Never paste the password into this doc.
""",
        "t27_secret_name",
        False,
    ),
    (
        "docs/runbooks/sap-rfc-user-gesperrt.md",
        """# RFC-User gesperrt (SAP PRD)

Wenn `RFC_TRACK` gesperrt ist:

1. SU01 -> Benutzer entsperren
2. Neues Initialpasswort setzen: `{V}`
3. In Jenkins-Credential `sap-rfc-prd` eintragen und Job neu starten.
""",
        "t27_sap_pw",
        True,
    ),
    (
        "docs/runbooks/sftp-partner-santos.pt.md",
        """# Parceiro SFTP - Santos Brasil

- Host: `ftp.santosbrasil.com.br`
- Usuário: `htl`
- Senha: `{V}`
- Diretório: `/saida/iftsta`

Em caso de erro "Permission denied", ligar para o suporte do terminal.
""",
        "t27_pw",
        True,
    ),
    (
        "docs/runbooks/sftp-partner-santos.en.md",
        """# SFTP partner - Santos Brasil

- Host: `ftp.santosbrasil.com.br`
- User: `htl`
- Password: {V}
""",
        "t27_redacted",
        False,
    ),
    (
        "docs/onboarding/password-policy.md",
        """# Password policy (Group IT)

| Setting | Value |
|---|---|
| Minimum length | {V} |
| Max age | {V2} |
| History | 24 |

Passwords are stored as argon2id hashes, e.g. `$argon2id$v=19$m=65536,t=3,p=4$...`.
""",
        "t27_policy",
        False,
    ),
    (
        "docs/api/customer-tracking-api.md",
        """# Customer tracking API

Authenticate with your API key in the `X-Api-Key` header:

```bash
curl -H "X-Api-Key: {V}" https://api.havnor-tideway.com/v1/containers/HTLU4417205
```

Keys look like `htl_live_...`; request one in the customer portal.
""",
        "t27_placeholder",
        False,
    ),
    (
        "docs/chat/slack-export-ops-rtm.json",
        """[
  {"user": "U04QX1", "ts": "1717229011.000100", "text": "who has the ECT sftp login?"},
  {"user": "U02LM7", "ts": "1717229102.000300", "text": "htl_edi / {V} - please move it to vault"},
  {"user": "U04QX1", "ts": "1717229140.000500", "text": "thx, done"}
]
""",
        "t27_pw",
        True,
    ),
    (
        "logs/edi-gateway-2024-06-01.log",
        """2024-06-01T10:12:04Z INFO  sftp connect host=sftp.ect.nl user=htl_edi
2024-06-01T10:12:05Z DEBUG sftp auth password={V}
2024-06-01T10:12:05Z INFO  fetched 14 CODECO files
""",
        "t27_pw",
        True,
    ),
    (
        "logs/edi-gateway-2024-06-02.log",
        """2024-06-02T10:12:04Z INFO  sftp connect host=sftp.ect.nl user=htl_edi password={V}
2024-06-02T10:12:05Z INFO  interchange ref=HTL00000418822 parsed 2 messages
""",
        "t27_redacted",
        False,
    ),
    (
        "logs/driver-api-access.log",
        """10.20.4.17 - - [01/Jun/2024:08:01:13 +0000] "GET /v1/stops?driver=DRV-1042&token={V} HTTP/1.1" 200 812
10.20.4.17 - - [01/Jun/2024:08:01:19 +0000] "POST /v1/pod HTTP/1.1" 201 44
""",
        "t27_jwt",
        True,
    ),
    (
        "logs/customs-client.log",
        """[2024-06-03 09:14:02] production.INFO: broker request {"url":"https://api.zollbroker-partner.de/v2/declarations","headers":{"X-Client-Secret":"{V}"}}
""",
        "t27_client_secret",
        True,
    ),
    # ================================================================ i18n / misc
    (
        "customer-portal/src/locales/nl.json",
        """{
  "login": {
    "password": "Wachtwoord",
    "error": "{V}",
    "reset": "{V2}",
    "hint": "{V3}"
  }
}
""",
        "t27_i18n",
        False,
    ),
    (
        "customer-portal/src/components/LoginForm.tsx",
        """export function LoginForm() {
  return (
    <form method="post">
      <input name="{V}" type="password" autoComplete="current-password" />
      <input name="{V2}" type="password" autoComplete="new-password" />
      <input name="{V3}" type="password" autoComplete="new-password" />
    </form>
  );
}
""",
        "t27_pw_field",
        False,
    ),
    (
        "customer-portal/.env.production",
        """NEXT_PUBLIC_API_BASE=https://api.havnor-tideway.com
NEXT_PUBLIC_MAPBOX_TOKEN={V}
""",
        "t27_mapbox_pk",
        False,
    ),
    (
        "customer-portal/.env.local",
        """NEXTAUTH_SECRET={V}
NEXTAUTH_URL=http://localhost:3000
""",
        "t27_b64_secret",
        True,
    ),
    (
        "customer-portal/src/lib/auth.ts",
        """export const authOptions = {
  providers: [
    AzureADProvider({
      clientId: '6a9f2c1e-4b7d-4e0a-9c3f-1d2e5b8a7c40',
      clientSecret: '{V}',
      tenantId: 'havnortideway.onmicrosoft.com',
    }),
  ],
};
""",
        "t27_client_secret",
        True,
    ),
    (
        "data-platform/dbt/profiles.ci.yml",
        """htl_dwh:
  target: ci
  outputs:
    ci:
      type: snowflake
      account: htl-eu.eu-central-1
      user: DBT_CI
      password: "{V}"
""",
        "t27_env_ref",
        False,
    ),
    (
        "data-platform/airflow/connections.yaml",
        """tracking_pg:
  conn_type: postgres
  host: pg-tracking.prod.htl.internal
  login: airflow
  password: {V}
oracle_bo:
  conn_type: oracle
  host: oracle-bo.ham.htl.local
  login: airflow_ro
  password: {V2}
here_api:
  conn_type: http
  host: router.hereapi.com
  password: {V3}
""",
        "t27_kms_blob",
        False,
    ),
    (
        "data-platform/airflow/dags/eta_model.py",
        """from airflow import DAG
from airflow.providers.http.operators.http import SimpleHttpOperator

HF_TOKEN = "{V}"

with DAG("eta_model_refresh", schedule="@daily") as dag:
    SimpleHttpOperator(task_id="pull", http_conn_id="model_hub",
                       headers={"Authorization": f"Bearer {HF_TOKEN}"})
""",
        "t27_generic_key",
        True,
    ),
    (
        "tools/ci-bot/.npmrc",
        """registry=https://registry.npmjs.org/
//registry.npmjs.org/:_authToken={V}
""",
        "t27_npm",
        True,
    ),
    (
        "tools/ci-bot/settings.xml",
        """<settings>
  <servers>
    <server>
      <id>htl-releases</id>
      <username>ci-bot</username>
      <password>{V}</password>
    </server>
  </servers>
</settings>
""",
        "tune6_maven_ref",
        False,
    ),
    (
        "tools/ci-bot/gradle.properties",
        """org.gradle.jvmargs=-Xmx2g
htlArtifactoryUser=ci-bot
htlArtifactoryPassword={V}
""",
        "t27_artifactory",
        True,
    ),
    (
        "tools/gh-sync/sync.sh",
        """#!/usr/bin/env bash
# mirrors the EDI mapping repo from GitLab (Rotterdam) to GitHub
GH_TOKEN={V}
git push "https://x-access-token:${GH_TOKEN}@github.com/havnor-tideway/edi-mappings.git" --mirror
""",
        "t27_github",
        True,
    ),
    (
        "wms/portal/settings/test.py",
        """from .base import *  # noqa

SECRET_KEY = "{V}"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
""",
        "t27_test_fake",
        False,
    ),
    (
        "wms/portal/accounts/tests/test_login.py",
        """def test_login_rejects_wrong_password(client, django_user_model):
    django_user_model.objects.create_user("ops-rtm", password="{V}")
    r = client.post("/login/", {"username": "ops-rtm", "password": "{V2}"})
    assert r.status_code == 200
""",
        "t27_test_fake",
        False,
    ),
    (
        "wms/importer/ImportJob.java",
        """package com.htl.wms.importer;

public class ImportJob {
    private static final String FTP_URL = "{V}";

    public void run() {
        new FtpFetcher(FTP_URL).fetchAll("/inbound/asn");
    }
}
""",
        "t27_sftp_uri",
        True,
    ),
    # ================================================================ added look-alikes
    (
        "vessel-schedule/data/rotation_2024w23.csv",
        """vessel,imo,service,pol,pod,eta
HTL Elbe,{V},NEU1,DEHAM,SGSIN,2024-06-21T06:00Z
HTL Maas,{V2},NEU1,NLRTM,SGSIN,2024-06-22T14:00Z
Tideway Santos,{V3},SAEC,BRSSZ,NLRTM,2024-06-30T02:00Z
""",
        "t27_imo",
        False,
    ),
    (
        "last-mile/src/test/kotlin/com/htl/lastmile/TrackingNumberTest.kt",
        """package com.htl.lastmile

import kotlin.test.Test
import kotlin.test.assertTrue

class TrackingNumberTest {
    @Test
    fun recognisesCarriers() {
        listOf("{V}", "{V2}", "{V3}").forEach { assertTrue(TrackingNumber.detect(it) != null) }
    }
}
""",
        "t27_tracking_no",
        False,
    ),
    (
        "docs/aws/cli-setup.de.md",
        """# AWS CLI einrichten

Beispielwerte aus der AWS-Dokumentation (nicht echt):

    aws configure
    AWS Access Key ID [None]: {V}
    AWS Secret Access Key [None]: {V2}

Echte Schlüssel bekommt ihr nur über SSO (`aws sso login --profile htl-tracking`).
""",
        "t27_aws_example",
        False,
    ),
    (
        "driver-app/android/app/src/main/res/values/auth.xml",
        """<?xml version="1.0" encoding="utf-8"?>
<resources>
    <!-- OAuth client id for Google sign-in of subcontractor drivers (public) -->
    <string name="server_client_id" translatable="false">{V}</string>
</resources>
""",
        "t27_gmaps_client_id",
        False,
    ),
    (
        "edi-gateway/config/routing.yaml",
        """routing:
  - from: {V}
    via: HVNR-AS2
    to: {V2}
    message: IFTSTA
  - from: {V3}
    via: sftp
    to: DEHAM
    message: CODECO
""",
        "t27_locode",
        False,
    ),
]
