"""Blind part ``tune32``: an agricultural cooperative and its agritech arm, Cosecha Unida
(Cooperativa Agrícola Cosecha Unida, "CU": grain elevators, input stores and a member portal in
Argentina, Uruguay and southern Brazil) and Surco Labs (the "Surco" farm-management SaaS and the
RiegoNode irrigation controllers). Files are the SaaS backend and workers (Django member portal,
Go and Node/TypeScript APIs, a Kotlin field app, Rust edge agents), embedded firmware for soil
probes and irrigation valves (C headers, PlatformIO, ESP-IDF Kconfig, MQTT and LoRaWAN: ChirpStack
and The Things Stack device keys, Mosquitto brokers, Node-RED flows, Telegraf), grain trading and
logistics (truck dispatch, weighbridge and silo SCADA bridges, contract feeds, SQL Server
procedures, SSIS packages), ERP integration (SAP Business One Service Layer, Odoo), weather data
vendors (API keys in pollers, FTP drops), drone imagery pipelines (OpenDroneMap, Airflow, rclone,
S3 and Azure Blob), the legacy on-prem Windows estate (web.config, .udl, PowerShell scheduled
tasks, batch files, ODBC DSNs), CI (GitHub Actions, GitLab CI, Azure Pipelines, Jenkins) and cloud
infrastructure (Terraform, Kubernetes, Helm, Compose, Ansible), plus runbooks, tickets, chat
exports, logs, notebooks and docs in English, Spanish and Portuguese. Written blind (without
seeing the scanner, its rules or other parts' templates).

Look-alikes sit in the same kinds of files under the same key names: password hashes (bcrypt,
argon2, Mosquitto ``$7$``, sha512crypt, Django pbkdf2, SQL Server ``0x0200``), values encrypted at
rest (SOPS, Ansible Vault, sealed secrets, Jasypt, Jenkins, DPAPI), references to environment
variables and secret stores, placeholders in three languages, public material (certificates,
public keys, SSH keys, Mapbox ``pk.`` tokens, OAuth client ids, firmware signing public keys),
identifiers shaped like secrets (LoRaWAN DevEUI/JoinEUI, Twilio account SIDs, lot and contract
numbers, animal RFID tags, IMEIs, digests, commit ids), UI text about passwords, documented
example credentials and credentials on documentation hosts, and test values that say they are
fake.
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
B32 = string.ascii_uppercase + "234567"
CRYPT64 = "./" + ALNUM


class Tune32Values(evalset.Values):
    """Value generators of the tune32 part; every name starts with ``t32_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "cosecha",
            "trigo",
            "sorgo",
            "girasol",
            "tractor",
            "silo",
            "pampa",
            "colheita",
            "semilla",
            "alfalfa",
            "arado",
            "cebada",
            "lluvia",
            "soja",
        ]
        self.users = [
            "surco_app",
            "riego",
            "granos",
            "portal",
            "erp_sync",
            "dron",
            "clima",
            "bascula",
            "logistica",
            "svc_ci",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def t32_util_b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        out = base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)
        text = out.decode()
        return text if pad else text.rstrip("=")

    def t32_util_crc(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def t32_util_armor(self, label: str, nbytes: int) -> str:
        body = base64.b64encode(self.rng.randbytes(nbytes)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def t32_util_aws(self) -> tuple[str, str]:
        key_id = "AKIA" + self.s(16, B32)
        secret = self.s(1, ALNUM) + self.s(39, ALNUM + "/+")
        return key_id, secret

    # ------------------------------------------------------------------ positives: passwords
    def t32_pw(self) -> str:
        shape = self.rng.randrange(6)
        word = self.pick(self.words)
        if shape == 0:
            return (
                word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*.+$"))
            )
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(12, 20), ALNUM + "!#%^*-_=+.@"
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}-{other}-{self.s(3, DIGITS)}"
        if shape == 3:
            return "Cu" + self.s(11, ALNUM) + self.pick(list("!#%&"))
        if shape == 4:
            return self.s(18, ALNUM)
        leet = word.replace("a", "@").replace("o", "0").replace("i", "1")
        return leet[0].upper() + leet[1:] + "_" + self.s(4, DIGITS)

    def t32_weak_pw(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(
                [
                    "Cosecha2024",
                    "Password1",
                    "admin123",
                    "Surco123!",
                    "Campo2023",
                    "riego1234",
                    "Qwerty123",
                    "Soja2022!",
                    "Senha123",
                    "Clave123",
                ]
            )
        if shape == 1:
            return "Cosecha" + str(self.rng.randrange(2016, 2027)) + self.pick(["", "!", "#", "*"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2024", "!", "01"])
        return self.pick(["Verano", "Invierno", "Otono", "Primavera", "Inverno"]) + str(
            self.rng.randrange(2019, 2027)
        )

    def t32_url_pw(self) -> str:
        if self.rng.randrange(2):
            return (
                self.pick(self.words).capitalize() + self.s(4, DIGITS) + self.pick(["", "x", "Q"])
            )
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(13, 22), ALNUM + "-_.~")

    def t32_mqtt_pw(self) -> str:
        if self.rng.randrange(2):
            return self.s(24, ALNUM)
        return "-".join(self.pick(self.words) for _ in range(3)) + "-" + self.s(3, DIGITS)

    def t32_wifi_psk(self) -> str:
        if self.rng.randrange(2):
            return (
                self.pick(self.words).capitalize()
                + self.pick(["Galpon", "Campo", "Silo"])
                + self.s(3, DIGITS)
            )
        return self.s(16, ALNUM + "#$%")

    def t32_sql_pw(self) -> str:
        body = self.s(1, string.ascii_uppercase) + self.s(self.rng.randrange(9, 14), ALNUM)
        return body + self.pick(["!", "#", "$", "@", "%"]) + self.s(2, DIGITS)

    def t32_b64_pw(self) -> str:
        return base64.b64encode(self.t32_pw().encode()).decode()

    def t32_basic_b64(self) -> str:
        user = self.pick([*self.users, "jenkins", "sap-b1"])
        return base64.b64encode(f"{user}:{self.t32_pw()}".encode()).decode()

    def t32_docker_auth(self) -> str:
        user = self.pick(["surco-ci", "cu-deploy", "robot$surco+ci"])
        return base64.b64encode(f"{user}:{self.t32_pw()}".encode()).decode()

    def t32_snmp(self) -> str:
        return self.pick(["cu", "riego", "silo"]) + "-" + self.s(12, ALNUM)

    # ------------------------------------------------------------------ positives: IoT
    def t32_lora_key(self) -> str:
        return self.s(32, HEXU)

    def t32_lora_c_array(self) -> str:
        return ", ".join(f"0x{b:02X}" for b in self.rng.randbytes(16))

    def t32_ttn_key(self) -> str:
        return f"NNSXS.{self.s(39, B32)}.{self.s(52, B32)}"

    def t32_chirpstack_token(self) -> str:
        def part(obj: dict[str, object]) -> str:
            return (
                base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode())
                .decode()
                .rstrip("=")
            )

        header = part({"alg": "HS256", "typ": "JWT"})
        payload = part(
            {
                "aud": "chirpstack",
                "iss": "chirpstack",
                "sub": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                "typ": "key",
            }
        )
        return f"{header}.{payload}.{self.t32_util_b64(32, urlsafe=True, pad=False)}"

    # ------------------------------------------------------------------ positives: tokens
    def t32_surco_key(self) -> str:
        return self.pick(["srk_live_", "srk_live_", "srk_prod_"]) + self.s(32, ALNUM)

    def t32_github(self) -> str:
        return self.t32_util_crc(self.pick(["ghp", "ghp", "gho", "ghs"]))

    def t32_npm(self) -> str:
        return self.t32_util_crc("npm")

    def t32_gitlab_runner(self) -> str:
        return "glrt-" + self.s(20, URLSAFE)

    def t32_nuget(self) -> str:
        return "oy2" + self.s(43, LOWNUM)

    def t32_aws_ini(self) -> str:
        key_id, secret = self.t32_util_aws()
        return f"aws_access_key_id = {key_id}\naws_secret_access_key = {secret}"

    def t32_b64_fernet(self) -> str:
        return self.t32_util_b64(32, urlsafe=True)

    def t32_aws_boto(self) -> str:
        key_id, secret = self.t32_util_aws()
        return f'aws_access_key_id="{key_id}",\n    aws_secret_access_key="{secret}",'

    def t32_aws_tf(self) -> str:
        key_id, secret = self.t32_util_aws()
        return f'access_key = "{key_id}"\n  secret_key = "{secret}"'

    def t32_rancher_token(self) -> str:
        return self.s(54, "bcdfghjklmnpqrstvwxz2456789")

    def t32_sonar(self) -> str:
        return self.pick(["sqp_", "squ_", "sqa_"]) + self.s(40, HEX)

    def t32_azdo_pat(self) -> str:
        return self.s(52, "abcdefghijklmnopqrstuvwxyz234567")

    def t32_azure_key(self) -> str:
        return self.t32_util_b64(64)

    def t32_azure_secret(self) -> str:
        return self.s(3, ALNUM + "_~.") + self.s(1, DIGITS) + "Q~" + self.s(34, ALNUM + "_~.-")

    def t32_sas_sig(self) -> str:
        from urllib.parse import quote

        return quote(self.t32_util_b64(32), safe="")

    def t32_gcp_pk(self) -> str:
        return self.t32_util_armor("PRIVATE KEY", 48 * 16).replace("\n", "\\n") + "\\n"

    def t32_openssh_key(self) -> str:
        return self.t32_util_armor("OPENSSH PRIVATE KEY", 48 * 7)

    def t32_ec_key(self) -> str:
        return self.t32_util_armor("EC PRIVATE KEY", 48 * 3)

    def t32_pgp_private(self) -> str:
        body = base64.b64encode(self.rng.randbytes(48 * 14)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        check = base64.b64encode(self.rng.randbytes(3)).decode()
        return (
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n"
            + "\n".join(rows)
            + f"\n={check}\n-----END PGP PRIVATE KEY BLOCK-----"
        )

    def t32_slack_bot(self) -> str:
        return f"xoxb-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-{self.s(24, ALNUM)}"

    def t32_slack_webhook(self) -> str:
        return f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}/B{self.s(10, UPNUM)}/{self.s(24, ALNUM)}"

    def t32_teams_webhook(self) -> str:
        ids = [str(uuid.UUID(int=self.rng.getrandbits(128), version=4)) for _ in range(3)]
        return (
            f"https://cosechaunida.webhook.office.com/webhookb2/{ids[0]}@{ids[1]}"
            f"/IncomingWebhook/{self.s(32, HEX)}/{ids[2]}"
        )

    def t32_discord_webhook(self) -> str:
        ident = self.rng.randrange(10**17, 10**19)
        return f"https://discord.com/api/webhooks/{ident}/{self.s(68, URLSAFE)}"

    def t32_telegram(self) -> str:
        return f"{self.rng.randrange(10**9, 7 * 10**9)}:AA{self.s(33, URLSAFE)}"

    def t32_twilio_token(self) -> str:
        return self.s(32, HEX)

    def t32_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def t32_stripe(self) -> str:
        if self.rng.randrange(3):
            return "sk_live_" + self.s(self.pick([24, 99]), ALNUM)
        return "rk_live_" + self.s(self.pick([24, 99]), ALNUM)

    def t32_stripe_whsec(self) -> str:
        return "whsec_" + self.s(32, ALNUM)

    def t32_mapbox_sk(self) -> str:
        user = self.pick(["cosechaunida", "surcolabs", "cu-gis"])
        payload = json.dumps({"u": user, "a": self.s(25, LOWNUM)}, separators=(",", ":"))
        head = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"sk.{head}.{self.s(22, URLSAFE)}"

    def t32_hex32(self) -> str:
        return self.s(32, HEX)

    def t32_weather_key(self) -> str:
        return self.pick([self.s(32, HEX), self.s(32, ALNUM), self.s(40, HEX)])

    def t32_planet_key(self) -> str:
        return "PLAK" + self.s(32, HEX)

    def t32_jwt_secret(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.s(64, HEX)
        if shape == 1:
            return self.t32_util_b64(48)
        return self.s(48, ALNUM + "-_")

    def t32_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            return (
                base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode())
                .decode()
                .rstrip("=")
            )

        header = part({"alg": "HS256", "typ": "JWT"})
        payload = part(
            {
                "sub": self.pick(self.users),
                "scope": self.pick(["erp:write", "granos:read", "riego:admin"]),
                "iat": 1730000000 + self.rng.randrange(10**7),
            }
        )
        return f"{header}.{payload}.{self.t32_util_b64(32, urlsafe=True, pad=False)}"

    def t32_django_key(self) -> str:
        return self.s(50, LOWNUM + "!@#%^&*(-_=+)")

    def t32_rails_key(self) -> str:
        return self.s(128, HEX)

    def t32_laravel_key(self) -> str:
        return "base64:" + self.t32_util_b64(32)

    def t32_vault_token(self) -> str:
        return "hvs." + self.s(24, ALNUM)

    def t32_tfc_token(self) -> str:
        return f"{self.s(14, ALNUM)}.atlasv1.{self.s(67, ALNUM)}"

    def t32_datadog(self) -> str:
        return self.s(32, HEX)

    def t32_hf(self) -> str:
        return "hf_" + self.s(34, string.ascii_letters)

    def t32_openai(self) -> str:
        return f"sk-proj-{self.s(58, URLSAFE)}T3BlbkFJ{self.s(58, URLSAFE)}"

    def t32_atlassian(self) -> str:
        return "ATATT3xFfGF0" + self.s(171, URLSAFE) + "=" + self.s(8, HEXU)

    def t32_odoo_key(self) -> str:
        return self.s(40, HEX)

    def t32_sentry_token(self) -> str:
        return "sntryu_" + self.s(64, HEX)

    def t32_pypi(self) -> str:
        return "pypi-AgEIcHlwaS5vcmc" + self.s(70, URLSAFE)

    def t32_mailgun(self) -> str:
        return "key-" + self.s(32, HEX)

    def t32_rclone_obscured(self) -> str:
        return self.t32_util_b64(self.rng.randrange(20, 32), urlsafe=True, pad=False)

    # ------------------------------------------------------------------ negatives: hashes
    def t32_bcrypt(self) -> str:
        return self.pick(["$2b$12$", "$2y$10$", "$2a$11$"]) + self.s(53, CRYPT64)

    def t32_argon2(self) -> str:
        salt = self.t32_util_b64(16, pad=False)
        digest = self.t32_util_b64(32, pad=False)
        return f"$argon2id$v=19$m=65536,t=3,p=4${salt}${digest}"

    def t32_mosq_hash(self) -> str:
        return f"$7$101${self.t32_util_b64(12)}${self.t32_util_b64(64)}"

    def t32_sha512crypt(self) -> str:
        return f"$6${self.s(16, CRYPT64)}${self.s(86, CRYPT64)}"

    def t32_pbkdf2(self) -> str:
        return f"pbkdf2_sha256$870000${self.s(22, ALNUM)}${self.t32_util_b64(32)}"

    def t32_mssql_hash(self) -> str:
        return "0x0200" + self.s(136, HEXU)

    def t32_sha256(self) -> str:
        return hashlib.sha256(self.rng.randbytes(24)).hexdigest()

    def t32_git_sha(self) -> str:
        return self.s(40, HEX)

    def t32_image_digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.rng.randbytes(24)).hexdigest()

    def t32_sri(self) -> str:
        return "sha512-" + self.t32_util_b64(64)

    # ------------------------------------------------------------------ negatives: encrypted
    def t32_sops(self) -> str:
        data = self.t32_util_b64(self.rng.randrange(12, 40))
        return (
            f"ENC[AES256_GCM,data:{data},iv:{self.t32_util_b64(32)},"
            f"tag:{self.t32_util_b64(16)},type:str]"
        )

    def t32_ansible_vault(self) -> str:
        body = self.s(80 * 5, HEX)
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def t32_sealed(self) -> str:
        return "AgB" + self.t32_util_b64(self.rng.randrange(360, 540))

    def t32_jasypt(self) -> str:
        return "ENC(" + self.t32_util_b64(self.rng.randrange(24, 48)) + ")"

    def t32_jenkins_enc(self) -> str:
        return "{AQAAABAAAAAQ" + self.t32_util_b64(36) + "}"

    def t32_dpapi(self) -> str:
        return "AQAAANCMnd8BFdERjHoAwE/Cl+sBAAAA" + self.t32_util_b64(self.rng.randrange(150, 230))

    def t32_rails_enc(self) -> str:
        return f"{self.t32_util_b64(self.rng.randrange(90, 200))}--{self.t32_util_b64(12)}--{self.t32_util_b64(16)}"

    def t32_encrypted_pem(self) -> str:
        return self.t32_util_armor("ENCRYPTED PRIVATE KEY", 48 * 10)

    # ------------------------------------------------------------------ negatives: public material
    def t32_cert(self) -> str:
        return self.t32_util_armor("CERTIFICATE", 48 * 14)

    def t32_pubkey(self) -> str:
        return self.t32_util_armor("PUBLIC KEY", 48 * 6)

    def t32_ssh_pub(self) -> str:
        body = base64.b64encode(
            b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00 " + self.rng.randbytes(32)
        ).decode()
        return f"ssh-ed25519 {body} {self.pick(self.users)}@{self.pick(['cu-bastion', 'notebook-ti', 'riego-build'])}"

    def t32_mapbox_pk(self) -> str:
        payload = json.dumps({"u": "cosechaunida", "a": self.s(25, LOWNUM)}, separators=(",", ":"))
        head = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"pk.{head}.{self.s(22, URLSAFE)}"

    def t32_google_client_id(self) -> str:
        return f"{self.s(12, DIGITS)}-{self.s(32, LOWNUM)}.apps.googleusercontent.com"

    def t32_fw_pubkey_array(self) -> str:
        return ", ".join(f"0x{b:02x}" for b in self.rng.randbytes(32))

    # ------------------------------------------------------------------ negatives: identifiers
    def t32_eui16(self) -> str:
        prefix = self.pick(["70B3D57ED0", "A840410000", "0004A30B00", "24E1246130"])
        return prefix + self.s(16 - len(prefix), HEXU)

    def t32_twilio_sid(self) -> str:
        return "AC" + self.s(32, HEX)

    def t32_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def t32_lot_id(self) -> str:
        return self.pick(
            [
                f"LOT-{self.rng.randrange(2021, 2027)}-{self.s(6, UPNUM)}",
                f"CTR-SOJ-{self.s(8, DIGITS)}",
                f"CP{self.s(11, DIGITS)}",
                f"RT{self.s(4, DIGITS)}-{self.s(6, UPNUM)}",
            ]
        )

    def t32_rfid(self) -> str:
        return self.pick(["032", "858", "076", "982"]) + self.s(12, DIGITS)

    def t32_imei(self) -> str:
        return "35" + self.s(13, DIGITS)

    def t32_bad_github(self) -> str:
        token = self.t32_util_crc("ghp")
        return token[:-1] + ("A" if token[-1] != "A" else "B")

    def t32_kv_ref(self) -> str:
        return self.pick(
            [
                "@Microsoft.KeyVault(SecretUri=https://kv-cu-prod.vault.azure.net/secrets/sql-erp-pass/)",
                "@Microsoft.KeyVault(VaultName=kv-surco;SecretName=mqtt-password)",
                "op://Infra/CU-SQL01 sa/password",
                "vault:secret/data/riego/mqtt#password",
                "awssm://prod/surco/db:password",
            ]
        )

    # ------------------------------------------------------------------ negatives: references, text
    def t32_env_ref(self) -> str:
        return self.pick(
            [
                "${DB_PASSWORD}",
                "${MQTT_PASSWORD:?missing}",
                "$(SAP_B1_PASSWORD)",
                "%ERP_PASSWORD%",
                "${{ secrets.SURCO_API_KEY }}",
                "{{ .Values.mqtt.password }}",
                "{{ vault_riego_mqtt_password }}",
                "$env:CU_SQL_PASSWORD",
            ]
        )

    def t32_ps_ref(self) -> str:
        return self.pick(
            [
                "Read-Host -AsSecureString -Prompt 'Contraseña de svc_erpsync'",
                "(Get-Secret -Name ErpSyncPassword -Vault CU)",
                "(Import-Clixml C:\\CU\\cred\\erpsync.xml).Password",
                "(Get-Credential CU\\svc_erpsync).Password",
            ]
        )

    def t32_yaml_ref(self) -> str:
        return self.pick(
            [
                "${SAP_B1_PASSWORD}",
                "${ODOO_API_KEY:?required}",
                "!vault secret/erp#password",
                "${file:/run/secrets/erp_password}",
                "${env:ERP_PASSWORD}",
            ]
        )

    def t32_tf_ref(self) -> str:
        return self.pick(
            [
                "var.db_password",
                "random_password.surco_db.result",
                "data.aws_secretsmanager_secret_version.surco_db.secret_string",
                'jsondecode(data.aws_secretsmanager_secret_version.db.secret_string)["password"]',
                "local.db_password",
            ]
        )

    def t32_helm_ref(self) -> str:
        return self.pick(
            [
                "{{ .Values.postgresql.auth.password | b64enc | quote }}",
                '{{ required "postgresql.auth.password" .Values.postgresql.auth.password | b64enc }}',
                '{{ include "surco.dbPassword" . | b64enc }}',
            ]
        )

    def t32_ci_ref(self) -> str:
        return self.pick(
            [
                "${{ secrets.OTA_AWS_SECRET_ACCESS_KEY }}",
                "${{ vars.OTA_AWS_SECRET_ACCESS_KEY }}",
                "$(OTA_AWS_SECRET)",
                "${OTA_AWS_SECRET_ACCESS_KEY}",
            ]
        )

    def t32_placeholder(self) -> str:
        return self.pick(
            [
                "<contraseña>",
                "<senha>",
                "<password>",
                "TU_CLAVE_AQUI",
                "SUA_CHAVE_AQUI",
                "CAMBIAR_ESTO",
                "changeme",
                "********",
                "xxxxxxxxxxxxxxxx",
                "REEMPLAZAR",
                "<api-key>",
                "YOUR_API_KEY",
                "[REDACTED]",
                "***",
            ]
        )

    def t32_redacted(self) -> str:
        return self.pick(
            ["********", "[REDACTED]", "***", "<redactado>", "(ver Key Vault)", "••••••••"]
        )

    def t32_i18n_pt(self) -> str:
        return self.pick(
            [
                "A senha é muito fraca.",
                "A senha deve ter pelo menos 10 caracteres",
                "Senha inválida ou expirada",
                "Digite sua senha",
                "As senhas não conferem",
            ]
        )

    def t32_i18n_es(self) -> str:
        return self.pick(
            [
                "Usá al menos 10 caracteres, con letras y números",
                "La contraseña es demasiado débil",
                "Las contraseñas no coinciden",
                "Ingresá tu contraseña",
                "La clave debe ser distinta de la anterior",
            ]
        )

    def t32_py_ref(self) -> str:
        return self.pick(
            [
                'os.environ["METEOBLUE_API_KEY"]',
                'os.getenv("METEOBLUE_API_KEY")',
                'os.environ.get("METEOBLUE_API_KEY", "")',
                "settings.METEOBLUE_API_KEY",
            ]
        )

    def t32_clima_arn(self) -> str:
        return (
            f"arn:aws:secretsmanager:sa-east-1:{self.s(12, DIGITS)}:secret:"
            f"{self.pick(['prod/clima/openweather', 'clima/owm-api-key'])}-{self.s(6, ALNUM)}"
        )

    def t32_fake_token(self) -> str:
        return self.pick(
            [
                "fake-token-for-tests",
                "test_password_not_real",
                "dummy-secret",
                "FAKE_SRK_" + "0" * 24,
                "not-a-real-key",
                "testtesttest",
                "00000000000000000000000000000000",
            ]
        )

    def t32_doc_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words) + self.s(4, DIGITS)
        return self.s(14, ALNUM)

    def t32_aws_example(self) -> str:
        return "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

    def t32_secret_path(self) -> str:
        return self.pick(
            [
                "/run/secrets/mqtt_password",
                "/etc/surco/db.pass",
                "/var/lib/riego/appkey.bin",
                "./secrets/weather.key",
            ]
        )


VALUES = Tune32Values

TEMPLATES: list[evalset.Template] = []

# ---------------------------------------------------------------------------------------------
# RiegoNode firmware, LoRaWAN and MQTT (embedded C, PlatformIO, ChirpStack, Mosquitto, Node-RED)
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    (
        "firmware/riegonode/include/secrets.h",
        """\
/*
 * secrets.h - RiegoNode v3 valve controller
 * NO COMMITEAR CAMBIOS A ESTE ARCHIVO (ver secrets.h.example)
 */
#ifndef RIEGONODE_SECRETS_H
#define RIEGONODE_SECRETS_H

#define WIFI_SSID        "CU-Galpon-Norte"
#define WIFI_PASSWORD    "{V}"

#define MQTT_HOST        "mqtt.riego.surco.app"
#define MQTT_PORT        8883
#define MQTT_USER        "riegonode-fw"
#define MQTT_PASSWORD    "{V2}"

#endif /* RIEGONODE_SECRETS_H */
""",
        "t32_wifi_psk",
        True,
    ),
    (
        "firmware/riegonode/include/secrets.h.example",
        """\
/*
 * secrets.h.example - copiar a secrets.h y completar
 */
#ifndef RIEGONODE_SECRETS_H
#define RIEGONODE_SECRETS_H

#define WIFI_SSID        "CU-Galpon-Norte"
#define WIFI_PASSWORD    "{V}"

#define MQTT_HOST        "mqtt.riego.surco.app"
#define MQTT_PORT        8883
#define MQTT_USER        "riegonode-fw"
#define MQTT_PASSWORD    "{V}"

#endif /* RIEGONODE_SECRETS_H */
""",
        "t32_placeholder",
        False,
    ),
    (
        "firmware/soilprobe/src/lorawan_keys.c",
        """\
/* Soil probe SP-40 - OTAA credentials for the Pergamino test field.
 * DevEUI and JoinEUI are printed on the label; the AppKey is per device. */
#include <stdint.h>
#include "lorawan_keys.h"

/* LSB first, as LMIC expects */
const uint8_t DEVEUI[8]  = { 0x3A, 0x11, 0x00, 0xD0, 0x7E, 0xD5, 0xB3, 0x70 };
const uint8_t APPEUI[8]  = { 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 };

/* MSB first */
const uint8_t APPKEY[16] = { {V} };

void os_getDevEui(u1_t *buf) { memcpy_P(buf, DEVEUI, 8); }
void os_getArtEui(u1_t *buf) { memcpy_P(buf, APPEUI, 8); }
void os_getDevKey(u1_t *buf) { memcpy_P(buf, APPKEY, 16); }
""",
        "t32_lora_c_array",
        True,
    ),
    (
        "firmware/riegonode/src/ota_verify.c",
        """\
/* ota_verify.c - verify signed firmware images before flashing the inactive slot.
 * The public half of the Surco release signing key (ed25519). The private half lives in
 * the release HSM; see docs/firmware/signing.md. */
#include <stdint.h>
#include <string.h>
#include "monocypher.h"
#include "ota.h"

static const uint8_t RELEASE_PUBKEY[32] = {
    {V}
};

int ota_verify(const uint8_t *image, size_t len, const uint8_t sig[64])
{
    return crypto_check(sig, RELEASE_PUBKEY, image, len) == 0 ? OTA_OK : OTA_BAD_SIG;
}
""",
        "t32_fw_pubkey_array",
        False,
    ),
    (
        "firmware/soilprobe/platformio.ini",
        """\
; PlatformIO project for the SP-40 soil probe (Heltec CubeCell / ASR6502)
[platformio]
default_envs = sp40_au915

[env]
platform = heltec-cubecell
framework = arduino
monitor_speed = 115200

[env:sp40_au915]
board = cubecell_board
board_build.arduino.lorawan.region = AU915
board_build.arduino.lorawan.adr = ON
build_flags =
    -D LORAWAN_DEVEUI=\\"70B3D57ED005A1C2\\"
    -D LORAWAN_APPEUI=\\"0000000000000000\\"
    -D LORAWAN_APPKEY=\\"{V}\\"
    -D SUBBAND=2
""",
        "t32_lora_key",
        True,
    ),
    (
        "firmware/soilprobe/devices/field-pergamino-lote7.csv",
        """\
# Inventario de sondas - lote 7 Pergamino (exportado de la planilla de campo)
dev_eui,join_eui,serial,profundidad_cm,instalado
{V},0000000000000000,SP40-00812,30,2024-09-12
{V2},0000000000000000,SP40-00813,60,2024-09-12
{V3},0000000000000000,SP40-00814,90,2024-09-13
""",
        "t32_eui16",
        False,
    ),
    (
        "iot/chirpstack/import/devices-lote12.json",
        """\
{
  "application_id": "5f0d2a8e-7b1c-4c1a-9d7e-21b0c5a4e9f3",
  "devices": [
    {
      "dev_eui": "70b3d57ed0061f42",
      "name": "valvula-lote12-norte",
      "device_profile": "riegonode-v3-au915",
      "keys": {
        "nwk_key": "{V}",
        "app_key": "{V2}"
      }
    }
  ]
}
""",
        "t32_lora_key",
        True,
    ),
    (
        "iot/chirpstack/chirpstack.toml",
        """\
# ChirpStack v4 - servidor de red de la cooperativa
[logging]
  level="info"

[postgresql]
  dsn="postgres://chirpstack:{V}@cu-pg-iot.internal/chirpstack?sslmode=require"
  max_open_connections=10

[redis]
  servers=["redis://cu-redis-iot.internal:6379"]

[network]
  net_id="000000"
  enabled_regions=["au915_1"]

[api]
  bind="0.0.0.0:8080"
  secret="{V2}"

[integration]
  enabled=["mqtt"]

  [integration.mqtt]
    server="ssl://mqtt.riego.surco.app:8883"
    json=true
    username="chirpstack"
    password="{V3}"
""",
        "t32_url_pw",
        True,
    ),
    (
        "iot/ttn/ttn-lw-cli.md",
        """\
# The Things Stack: conectar los gateways de la cooperativa

Usamos la instancia `cosechaunida.au1.cloud.thethings.industries`.

```sh
ttn-lw-cli login --api-key {V}
ttn-lw-cli end-devices list riego-lote12 --name
```

La clave de arriba es la de la cuenta de integración `cu-riego-bridge`
(permisos: `RIGHT_APPLICATION_TRAFFIC_READ`, `RIGHT_APPLICATION_DEVICES_WRITE`).
""",
        "t32_ttn_key",
        True,
    ),
    (
        "iot/bridge/ttn_webhook.py",
        """\
\"\"\"Forward TTS uplinks from the riego application into the Surco ingest queue.\"\"\"

import requests

TTS_BASE = "https://cosechaunida.au1.cloud.thethings.industries/api/v3"
TTS_APP = "riego-lote12"
TTS_API_KEY = "{V}"


def list_devices() -> list[dict]:
    r = requests.get(
        f"{TTS_BASE}/applications/{TTS_APP}/devices",
        headers={"Authorization": f"Bearer {TTS_API_KEY}"},
        timeout=15,
    )
    r.raise_for_status()
    return r.json()["end_devices"]
""",
        "t32_ttn_key",
        True,
    ),
    (
        "iot/mosquitto/conf.d/bridge-silo.conf",
        """\
# Puente del broker local del acopio (silo-gw) hacia el broker central
connection cu-central
address mqtt.riego.surco.app:8883
bridge_protocol_version mqttv311
bridge_cafile /etc/mosquitto/certs/cu-root.pem
remote_clientid silo-gw-venado-tuerto
remote_username silo-gw
remote_password {V}
topic silos/# out 1 local/ cu/venado-tuerto/
topic comandos/# in 1 local/ cu/venado-tuerto/
""",
        "t32_mqtt_pw",
        True,
    ),
    (
        "iot/mosquitto/passwd",
        """\
riegonode-fw:{V}
silo-gw:{V2}
chirpstack:{V3}
telegraf:{V4}
nodered:{V5}
""",
        "t32_mosq_hash",
        False,
    ),
    (
        "iot/nodered/flows_cred_plain.json",
        """\
{
    "a31c9f0e.5d2b6": {
        "user": "nodered",
        "password": "{V}"
    },
    "7f04be12.c99a3": {
        "token": "{V2}"
    }
}
""",
        "t32_mqtt_pw",
        True,
    ),
    (
        "iot/nodered/settings.js",
        """\
module.exports = {
    uiPort: process.env.PORT || 1880,
    flowFile: 'flows.json',
    // credenciales cifradas con esta clave: si se pierde, hay que recargar todas las contraseñas
    credentialSecret: process.env.NODE_RED_CREDENTIAL_SECRET,
    adminAuth: {
        type: "credentials",
        users: [{
            username: "operador",
            password: "{V}",
            permissions: "*"
        }]
    },
    functionGlobalContext: {},
};
""",
        "t32_bcrypt",
        False,
    ),
    (
        "iot/telegraf/telegraf.d/mqtt_consumer.conf",
        """\
[[inputs.mqtt_consumer]]
  servers = ["ssl://mqtt.riego.surco.app:8883"]
  topics = ["cu/+/sensores/#"]
  qos = 1
  client_id = "telegraf-cu-metrics"
  username = "telegraf"
  password = "{V}"
  data_format = "json_v2"

[[outputs.influxdb_v2]]
  urls = ["https://influx.cu.internal:8086"]
  token = "{V2}"
  organization = "cosecha-unida"
  bucket = "sensores"
""",
        "t32_mqtt_pw",
        True,
    ),
    (
        "iot/telegraf/telegraf.d/outputs.conf",
        """\
[[outputs.influxdb_v2]]
  urls = ["https://influx.cu.internal:8086"]
  ## el token se inyecta desde el unit de systemd (EnvironmentFile=/etc/default/telegraf)
  token = "{V}"
  organization = "cosecha-unida"
  bucket = "sensores"
""",
        "t32_env_ref",
        False,
    ),
    (
        "firmware/gateway-agent/src/config.rs",
        """\
//! Static config for the field gateway agent (Raspberry Pi CM4 + RAK2287).
use std::time::Duration;

pub const BROKER_URL: &str = "mqtts://mqtt.riego.surco.app:8883";
pub const BROKER_USER: &str = "gw-agent";
// TODO(pablo): leer de /etc/riego/agent.toml antes del release 1.4
pub const BROKER_PASS: &str = "{V}";
pub const KEEPALIVE: Duration = Duration::from_secs(30);
""",
        "t32_mqtt_pw",
        True,
    ),
    (
        "firmware/gateway-agent/src/mqtt.rs",
        """\
use rumqttc::{MqttOptions, Transport};

pub fn options(cfg: &crate::settings::Settings) -> MqttOptions {
    let mut opts = MqttOptions::new("gw-agent", &cfg.broker_host, 8883);
    // password comes from a root-only file provisioned by Ansible, never compiled in
    let pass = std::fs::read_to_string("{V}").expect("broker password file");
    opts.set_credentials(&cfg.broker_user, pass.trim());
    opts.set_transport(Transport::tls_with_default_config());
    opts
}
""",
        "t32_secret_path",
        False,
    ),
    (
        "firmware/riegonode/sdkconfig.defaults",
        """\
# ESP-IDF defaults for RiegoNode v3 (ESP32-C3)
CONFIG_ESPTOOLPY_FLASHSIZE_4MB=y
CONFIG_PARTITION_TABLE_CUSTOM=y
CONFIG_RIEGO_WIFI_SSID="CU-Taller"
CONFIG_RIEGO_WIFI_PASSWORD="{V}"
CONFIG_RIEGO_MQTT_URI="mqtts://mqtt.riego.surco.app"
CONFIG_LWIP_SNTP_MAX_SERVERS=2
""",
        "t32_wifi_psk",
        True,
    ),
    (
        "firmware/riegonode/main/Kconfig.projbuild",
        """\
menu "RiegoNode configuration"

    config RIEGO_WIFI_SSID
        string "WiFi SSID"
        default "CU-Taller"

    config RIEGO_WIFI_PASSWORD
        string "WiFi password"
        default "{V}"
        help
            Set in sdkconfig (not committed). The default is only a marker.

endmenu
""",
        "t32_placeholder",
        False,
    ),
    (
        "iot/provisioning/flash_batch.sh",
        """\
#!/usr/bin/env bash
# Grabar un lote de RiegoNode en el banco de pruebas del taller.
set -euo pipefail

PORT=${1:-/dev/ttyUSB0}
MQTT_PASS='{V}'

for serial in $(cat lote.txt); do
  echo "== $serial"
  python3 tools/nvs_gen.py --serial "$serial" --mqtt-user "rn-$serial" --mqtt-pass "$MQTT_PASS" > nvs.csv
  esptool.py --port "$PORT" write_flash 0x9000 nvs.bin
done
""",
        "t32_mqtt_pw",
        True,
    ),
    (
        "iot/provisioning/README.pt-BR.md",
        """\
# Provisionamento de sensores (Rio Grande do Sul)

1. Cadastre o DevEUI no ChirpStack (perfil `sp40-au915`).
2. Gere a AppKey com `openssl rand -hex 16` e grave com `tools/flash_sp40.py`.
3. **Nunca** cole a AppKey neste repositório. Exemplo do formato do DevEUI
   impresso na etiqueta: `{V}`.

Dúvidas: #iot-campo no Slack.
""",
        "t32_eui16",
        False,
    ),
    (
        "iot/modbus/silo_scada_bridge.yaml",
        """\
# Bridge entre el PLC de la planta de silos (Modbus TCP) y MQTT
plc:
  host: 10.40.2.15
  port: 502
  unit_id: 1
mqtt:
  url: mqtts://mqtt.riego.surco.app:8883
  username: scada-bridge
  password: "{V}"
  base_topic: cu/venado-tuerto/silos
registers:
  - name: temp_silo_1
    address: 40001
    scale: 0.1
""",
        "t32_mqtt_pw",
        True,
    ),
]

# ---------------------------------------------------------------------------------------------
# Surco SaaS backend and member portal (Django, Go, Node/TypeScript, Kotlin, PHP, Ruby)
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    (
        "portal/socios/settings/production.py",
        """\
from .base import *  # noqa: F403

DEBUG = False
ALLOWED_HOSTS = ["socios.cosechaunida.coop", "portal.cosechaunida.coop"]

SECRET_KEY = "{V}"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "portal_socios",
        "USER": "portal",
        "PASSWORD": os.environ["PORTAL_DB_PASSWORD"],
        "HOST": "cu-pg-portal.internal",
    }
}
""",
        "t32_django_key",
        True,
    ),
    (
        "portal/socios/settings/base.py",
        """\
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "{V}")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "socios",
    "liquidaciones",
    "insumos",
]

LANGUAGE_CODE = "es-ar"
TIME_ZONE = "America/Argentina/Buenos_Aires"
""",
        "t32_django_key",
        True,
    ),
    (
        "portal/socios/settings/test.py",
        """\
from .base import *  # noqa: F403

# Solo para la suite de tests: no es un secreto.
SECRET_KEY = "{V}"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
""",
        "t32_fake_token",
        False,
    ),
    (
        "portal/socios/fixtures/usuarios_demo.json",
        """\
[
  {
    "model": "auth.user",
    "pk": 1,
    "fields": {
      "username": "admin.portal",
      "email": "ti@cosechaunida.coop",
      "password": "{V}",
      "is_staff": true,
      "is_superuser": true
    }
  },
  {
    "model": "auth.user",
    "pk": 2,
    "fields": {
      "username": "socio.demo",
      "email": "socio.demo@cosechaunida.coop",
      "password": "{V2}",
      "is_staff": false
    }
  }
]
""",
        "t32_pbkdf2",
        False,
    ),
    (
        "portal/socios/management/commands/crear_admin.py",
        """\
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Crea el usuario administrador inicial del portal de socios"

    def handle(self, *args, **options):
        User = get_user_model()
        if not User.objects.filter(username="admin.portal").exists():
            User.objects.create_superuser("admin.portal", "ti@cosechaunida.coop", "{V}")
            self.stdout.write(self.style.SUCCESS("admin.portal creado"))
""",
        "t32_weak_pw",
        True,
    ),
    (
        "portal/socios/pagos/stripe_client.py",
        """\
import stripe

# Cuotas sociales y compra de insumos con tarjeta (filial Uruguay)
stripe.api_key = "{V}"
stripe.api_version = "2024-06-20"


def crear_cobro(socio, monto_centavos, concepto):
    return stripe.PaymentIntent.create(
        amount=monto_centavos,
        currency="usd",
        customer=socio.stripe_customer_id,
        description=concepto,
    )
""",
        "t32_stripe",
        True,
    ),
    (
        "portal/socios/pagos/webhooks.py",
        """\
import stripe
from django.http import HttpResponse, HttpResponseBadRequest
from django.views.decorators.csrf import csrf_exempt

ENDPOINT_SECRET = "{V}"


@csrf_exempt
def stripe_webhook(request):
    try:
        event = stripe.Webhook.construct_event(
            request.body, request.headers["Stripe-Signature"], ENDPOINT_SECRET
        )
    except (ValueError, stripe.error.SignatureVerificationError):
        return HttpResponseBadRequest()
    return HttpResponse(status=200)
""",
        "t32_stripe_whsec",
        True,
    ),
    (
        "portal/socios/templates/registration/password_change_form.html",
        """\
{% extends "base.html" %}
{% load i18n %}
{% block content %}
<h2>{% translate "Cambiar contraseña" %}</h2>
<form method="post">{% csrf_token %}
  <label for="id_new_password1">{% translate "Nueva contraseña" %}</label>
  <input type="password" name="new_password1" id="id_new_password1" autocomplete="new-password">
  <p class="help">{V}</p>
  <button type="submit">{% translate "Guardar" %}</button>
</form>
{% endblock %}
""",
        "t32_i18n_es",
        False,
    ),
    (
        "portal/socios/locale/pt_BR/LC_MESSAGES/django.po",
        """\
# Portal do Associado - tradução pt-BR
msgid ""
msgstr ""
"Language: pt_BR\\n"
"Content-Type: text/plain; charset=UTF-8\\n"

#: socios/forms.py:41
msgid "Password"
msgstr "Senha"

#: socios/forms.py:58
msgid "The password is too weak."
msgstr "{V}"
""",
        "t32_i18n_pt",
        False,
    ),
    (
        "services/granos-api/internal/config/config.go",
        """\
package config

import (
	"os"
	"time"
)

type Config struct {
	DatabaseURL  string
	JWTSecret    []byte
	TokenTTL     time.Duration
	SAPBaseURL   string
}

func Load() Config {
	return Config{
		DatabaseURL: getenv("DATABASE_URL", "postgres://granos:{V}@cu-pg-granos.internal:5432/granos?sslmode=require"),
		JWTSecret:   []byte(getenv("JWT_SECRET", "")),
		TokenTTL:    12 * time.Hour,
		SAPBaseURL:  getenv("SAP_B1_URL", "https://cu-erp02:50000/b1s/v1"),
	}
}

func getenv(k, def string) string {
	if v, ok := os.LookupEnv(k); ok {
		return v
	}
	return def
}
""",
        "t32_url_pw",
        True,
    ),
    (
        "services/granos-api/internal/auth/jwt.go",
        """\
package auth

import (
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// signingKey firma los tokens de la mesa de granos. Rotado 2024-03 (ver INC-2231).
var signingKey = []byte("{V}")

func Issue(user string, scopes []string) (string, error) {
	claims := jwt.MapClaims{
		"sub":    user,
		"scopes": scopes,
		"exp":    time.Now().Add(8 * time.Hour).Unix(),
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(signingKey)
}
""",
        "t32_jwt_secret",
        True,
    ),
    (
        "services/granos-api/internal/auth/jwt_test.go",
        """\
package auth

import "testing"

func TestIssueRejectsTamperedToken(t *testing.T) {
	// token de ejemplo con checksum inválido: el validador de PATs debe rechazarlo
	const bad = "{V}"
	if LooksLikeGitHubPAT(bad) {
		t.Fatalf("expected %q to fail the checksum", bad)
	}
}
""",
        "t32_bad_github",
        False,
    ),
    (
        "services/granos-api/cmd/seed/main.go",
        """\
package main

import (
	"database/sql"
	"log"

	_ "github.com/jackc/pgx/v5/stdlib"
)

const dsn = "host=localhost port=5432 user=granos password={V} dbname=granos sslmode=disable"

func main() {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	log.Println("cargando contratos de prueba...")
}
""",
        "t32_weak_pw",
        True,
    ),
    (
        "services/logistica/src/config/index.ts",
        """\
import 'dotenv/config';

export const config = {
  port: Number(process.env.PORT ?? 3000),
  mapbox: {
    // token público para el mapa de camiones en el panel (scopes: styles:read, fonts:read)
    publicToken: '{V}',
  },
  redisUrl: process.env.REDIS_URL ?? 'redis://localhost:6379',
};
""",
        "t32_mapbox_pk",
        False,
    ),
    (
        "services/logistica/scripts/upload-tileset.ts",
        """\
import mbxClient from '@mapbox/mapbox-sdk';
import mbxUploads from '@mapbox/mapbox-sdk/services/uploads';

// Sube las capas de lotes/caminos rurales a Mapbox Studio.
const client = mbxClient({ accessToken: '{V}' });
const uploads = mbxUploads(client);

await uploads
  .createUpload({ tileset: 'cosechaunida.caminos-rurales', url: process.argv[2], name: 'caminos' })
  .send();
""",
        "t32_mapbox_sk",
        True,
    ),
    (
        "services/logistica/src/notify/whatsapp.ts",
        """\
import twilio from 'twilio';

const accountSid = '{V}';
const authToken = process.env.TWILIO_AUTH_TOKEN!;
const client = twilio(accountSid, authToken);

export async function avisarTurnoDescarga(telefono: string, turno: string) {
  await client.messages.create({
    from: 'whatsapp:+5493415550100',
    to: `whatsapp:${telefono}`,
    body: `Su turno de descarga en planta es ${turno}.`,
  });
}
""",
        "t32_twilio_sid",
        False,
    ),
    (
        "services/alertas/heladas/sms.js",
        """\
// Alertas de heladas por SMS a los productores (Twilio)
const twilio = require('twilio');

const client = twilio(
  process.env.TWILIO_ACCOUNT_SID,
  process.env.TWILIO_AUTH_TOKEN || '{V}'
);

module.exports.enviar = (numero, texto) =>
  client.messages.create({ from: '+5493415550177', to: numero, body: texto });
""",
        "t32_twilio_token",
        True,
    ),
    (
        "services/logistica/.env.development",
        """\
PORT=3000
DATABASE_URL=postgres://logistica:{V}@localhost:5432/logistica
REDIS_URL=redis://:{V2}@localhost:6379/0
MAPBOX_PUBLIC_TOKEN=pk.placeholder
""",
        "t32_url_pw",
        True,
    ),
    (
        "services/logistica/.env.example",
        """\
PORT=3000
DATABASE_URL=postgres://logistica:{V}@localhost:5432/logistica
REDIS_URL=redis://localhost:6379
MAPBOX_PUBLIC_TOKEN=
GOOGLE_MAPS_SERVER_KEY={V2}
SENDGRID_API_KEY={V3}
""",
        "t32_placeholder",
        False,
    ),
    (
        "services/logistica/src/mail/sendgrid.ts",
        """\
import sgMail from '@sendgrid/mail';

sgMail.setApiKey('{V}');

export function enviarRemito(to: string, pdf: Buffer, numero: string) {
  return sgMail.send({
    to,
    from: 'logistica@cosechaunida.coop',
    subject: `Remito ${numero}`,
    attachments: [{ content: pdf.toString('base64'), filename: `${numero}.pdf` }],
  });
}
""",
        "t32_sendgrid",
        True,
    ),
    (
        "apps/campo-android/app/build.gradle.kts",
        """\
plugins {
    id("com.android.application")
    kotlin("android")
}

android {
    namespace = "app.surco.campo"
    defaultConfig {
        applicationId = "app.surco.campo"
        minSdk = 26
        versionCode = 412
        buildConfigField("String", "SURCO_API_KEY", "\\"{V}\\"")
        buildConfigField("String", "API_BASE", "\\"https://api.surco.app/v2/\\"")
    }
    signingConfigs {
        create("release") {
            storeFile = file("../keystore/surco-release.jks")
            storePassword = System.getenv("SURCO_KEYSTORE_PASSWORD")
            keyAlias = "surco"
        }
    }
}
""",
        "t32_surco_key",
        True,
    ),
    (
        "apps/campo-android/gradle.properties",
        """\
org.gradle.jvmargs=-Xmx3g -Dfile.encoding=UTF-8
android.useAndroidX=true
kotlin.code.style=official
# firma release (CI usa variables de entorno; esto es para builds locales de Mariana)
SURCO_KEYSTORE_PASSWORD={V}
SURCO_KEY_PASSWORD={V}
""",
        "t32_pw",
        True,
    ),
    (
        "apps/campo-android/app/src/main/res/values-pt-rBR/strings.xml",
        """\
<?xml version="1.0" encoding="utf-8"?>
<resources>
    <string name="app_name">Surco Campo</string>
    <string name="login_user">Usuário</string>
    <string name="login_password">Senha</string>
    <string name="login_password_error">{V}</string>
    <string name="sync_pending">Sincronização pendente</string>
</resources>
""",
        "t32_i18n_pt",
        False,
    ),
    (
        "apps/campo-android/app/src/main/java/app/surco/campo/data/SyncClient.kt",
        """\
package app.surco.campo.data

import okhttp3.OkHttpClient
import okhttp3.Request

class SyncClient(private val http: OkHttpClient) {
    // Google sign-in: el client id es público
    private val webClientId = "{V}"

    fun request(path: String): Request =
        Request.Builder()
            .url("https://api.surco.app/v2/$path")
            .header("X-Client", webClientId)
            .build()
}
""",
        "t32_google_client_id",
        False,
    ),
    (
        "services/insumos/config/database.php",
        """\
<?php
// Tienda de insumos (Laravel) - conexión a la base del ERP viejo
return [
    'default' => env('DB_CONNECTION', 'mysql'),
    'connections' => [
        'erp_legacy' => [
            'driver' => 'sqlsrv',
            'host' => env('ERP_DB_HOST', 'CU-SQL01'),
            'database' => 'CU_ERP',
            'username' => env('ERP_DB_USER', 'insumos_web'),
            'password' => env('ERP_DB_PASSWORD', '{V}'),
        ],
    ],
];
""",
        "t32_sql_pw",
        True,
    ),
    (
        "services/insumos/.env",
        """\
APP_NAME="Tienda de Insumos"
APP_ENV=production
APP_KEY={V}
APP_DEBUG=false
APP_URL=https://insumos.cosechaunida.coop

DB_CONNECTION=mysql
DB_HOST=cu-mysql-insumos.internal
DB_DATABASE=insumos
DB_USERNAME=insumos
# auth_socket en el servidor: sin contraseña
DB_SOCKET=/var/run/mysqld/mysqld.sock
""",
        "t32_laravel_key",
        True,
    ),
    (
        "services/cuotas/config/credentials.yml.enc",
        """\
{V}""",
        "t32_rails_enc",
        False,
    ),
    (
        "services/cuotas/config/initializers/mailgun.rb",
        """\
# Envío de liquidaciones de cuotas sociales por mail
ActionMailer::Base.delivery_method = :mailgun
ActionMailer::Base.mailgun_settings = {
  api_key: ENV.fetch("MAILGUN_API_KEY", "{V}"),
  domain: "mg.cosechaunida.coop",
  api_host: "api.mailgun.net"
}
""",
        "t32_mailgun",
        True,
    ),
    (
        "services/cuotas/config/secrets.yml",
        """\
development:
  secret_key_base: {V}

test:
  secret_key_base: {V2}

production:
  secret_key_base: <%= ENV["SECRET_KEY_BASE"] %>
""",
        "t32_rails_key",
        True,
    ),
    (
        "services/cuotas/spec/support/fake_credentials.rb",
        """\
# Credenciales falsas para los specs; WebMock intercepta todas las llamadas.
RSpec.configure do |config|
  config.before do
    stub_const("Mailgun::API_KEY", "{V}")
    stub_const("Afip::CERT_PASSWORD", "{V2}")
  end
end
""",
        "t32_fake_token",
        False,
    ),
]

# ---------------------------------------------------------------------------------------------
# Grain trading, weighbridge and logistics; SQL Server; legacy on-prem Windows; ERP integration
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    (
        "legacy/Bascula.Web/Web.config",
        """\
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <connectionStrings>
    <add name="BasculaDb"
         connectionString="Data Source=CU-SQL01\\BASCULA;Initial Catalog=Bascula;User ID=bascula_web;Password={V};MultipleActiveResultSets=True"
         providerName="System.Data.SqlClient" />
  </connectionStrings>
  <appSettings>
    <add key="Planta" value="Venado Tuerto" />
    <add key="ImpresoraTickets" value="\\\\CU-PRN03\\Zebra-Balanza" />
  </appSettings>
  <system.web>
    <compilation debug="false" targetFramework="4.7.2" />
  </system.web>
</configuration>
""",
        "t32_sql_pw",
        True,
    ),
    (
        "legacy/Bascula.Web/Web.Release.config",
        """\
<?xml version="1.0" encoding="utf-8"?>
<configuration xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform">
  <connectionStrings configProtectionProvider="DataProtectionConfigurationProvider">
    <EncryptedData>
      <CipherData>
        <CipherValue>{V}</CipherValue>
      </CipherData>
    </EncryptedData>
  </connectionStrings>
</configuration>
""",
        "t32_dpapi",
        False,
    ),
    (
        "legacy/Acopio.Sync/App.config",
        """\
<?xml version="1.0" encoding="utf-8" ?>
<configuration>
  <appSettings>
    <add key="SapServiceLayer" value="https://cu-erp02:50000/b1s/v1/" />
    <add key="SapCompanyDb" value="SBO_COSECHAUNIDA" />
    <add key="SapUser" value="manager" />
    <add key="SapPassword" value="{V}" />
    <add key="IntervaloMinutos" value="15" />
  </appSettings>
</configuration>
""",
        "t32_weak_pw",
        True,
    ),
    (
        "legacy/Acopio.Sync/ServiceLayerClient.cs",
        """\
using System.Net.Http;
using System.Net.Http.Json;
using System.Threading.Tasks;

namespace CosechaUnida.Acopio.Sync
{
    public class ServiceLayerClient
    {
        private readonly HttpClient _http;

        public ServiceLayerClient(HttpClient http) => _http = http;

        public async Task LoginAsync()
        {
            var body = new
            {
                CompanyDB = "SBO_COSECHAUNIDA",
                UserName = "intsync",
                Password = "{V}"
            };
            var resp = await _http.PostAsJsonAsync("Login", body);
            resp.EnsureSuccessStatusCode();
        }
    }
}
""",
        "t32_pw",
        True,
    ),
    (
        "legacy/Acopio.Sync/ServiceLayerClient.Tests/LoginTests.cs",
        """\
using Xunit;

namespace CosechaUnida.Acopio.Sync.Tests
{
    public class LoginTests
    {
        // El servidor de prueba (WireMock) acepta cualquier contraseña.
        private const string FakePassword = "{V}";

        [Fact]
        public async void Login_sets_session_cookie()
        {
            var client = TestServer.CreateClient(password: FakePassword);
            await client.LoginAsync();
        }
    }
}
""",
        "t32_fake_token",
        False,
    ),
    (
        "legacy/scripts/Backup-Bascula.ps1",
        """\
# Backup nocturno de la base de la balanza (tarea programada en CU-SQL01)
$ErrorActionPreference = 'Stop'
$fecha = Get-Date -Format 'yyyyMMdd'
$destino = "\\\\CU-NAS01\\backups\\bascula\\Bascula_$fecha.bak"

$securePass = ConvertTo-SecureString '{V}' -AsPlainText -Force
$cred = New-Object System.Management.Automation.PSCredential ('CU\\svc_backup', $securePass)

Backup-SqlDatabase -ServerInstance 'CU-SQL01\\BASCULA' -Database 'Bascula' `
    -BackupFile $destino -Credential $cred -CompressionOption On
""",
        "t32_pw",
        True,
    ),
    (
        "legacy/scripts/Set-ErpTask.ps1",
        """\
# Registra la tarea de sincronización con el ERP. La contraseña se pide al operador.
$user = 'CU\\svc_erpsync'
$pass = {V}
$action = New-ScheduledTaskAction -Execute 'C:\\CU\\AcopioSync\\AcopioSync.exe'
$trigger = New-ScheduledTaskTrigger -Daily -At 2am
Register-ScheduledTask -TaskName 'CU-AcopioSync' -Action $action -Trigger $trigger `
    -User $user -Password ([Runtime.InteropServices.Marshal]::PtrToStringAuto(
        [Runtime.InteropServices.Marshal]::SecureStringToBSTR($pass)))
""",
        "t32_ps_ref",
        False,
    ),
    (
        "legacy/scripts/mapear_unidades.bat",
        """\
@echo off
REM Mapeo de unidades para las PCs de la planta de acopio
net use B: \\\\CU-NAS01\\balanza /user:CU\\operador.planta {V} /persistent:yes
net use R: \\\\CU-NAS01\\remitos /user:CU\\operador.planta {V} /persistent:yes
echo Unidades mapeadas.
""",
        "t32_weak_pw",
        True,
    ),
    (
        "legacy/odbc/odbc.ini",
        """\
[CU_ERP]
Driver = ODBC Driver 17 for SQL Server
Server = CU-SQL01
Database = CU_ERP
UID = reportes
PWD = {V}

[BASCULA]
Driver = ODBC Driver 17 for SQL Server
Server = CU-SQL01\\BASCULA
Database = Bascula
Trusted_Connection = yes
""",
        "t32_sql_pw",
        True,
    ),
    (
        "legacy/reportes/Liquidaciones.udl",
        """\
[oledb]
; Everything after this line is an OLE DB initstring
Provider=SQLOLEDB.1;Password={V};Persist Security Info=True;User ID=reportes;Initial Catalog=CU_ERP;Data Source=CU-SQL01
""",
        "t32_sql_pw",
        True,
    ),
    (
        "legacy/ssis/CargaContratos.dtsConfig",
        """\
<?xml version="1.0"?>
<DTSConfiguration>
  <Configuration ConfiguredType="Property" Path="\\Package.Connections[CU_ERP].Properties[ConnectionString]" ValueType="String">
    <ConfiguredValue>Data Source=CU-SQL01;User ID=ssis_carga;Password={V};Initial Catalog=CU_ERP;Provider=SQLNCLI11.1;</ConfiguredValue>
  </Configuration>
  <Configuration ConfiguredType="Property" Path="\\Package.Variables[User::CarpetaEntrada].Properties[Value]" ValueType="String">
    <ConfiguredValue>\\\\CU-NAS01\\contratos\\entrada</ConfiguredValue>
  </Configuration>
</DTSConfiguration>
""",
        "t32_sql_pw",
        True,
    ),
    (
        "db/granos/migrations/V2024_07_02__logins.sql",
        """\
-- Logins de servicio para la mesa de granos (SQL Server 2019)
USE [master];
GO
CREATE LOGIN [granos_api] WITH PASSWORD = N'{V}', CHECK_POLICY = ON, DEFAULT_DATABASE = [Granos];
GO
USE [Granos];
CREATE USER [granos_api] FOR LOGIN [granos_api];
ALTER ROLE [db_datareader] ADD MEMBER [granos_api];
ALTER ROLE [db_datawriter] ADD MEMBER [granos_api];
GO
""",
        "t32_sql_pw",
        True,
    ),
    (
        "db/granos/exports/logins_cu-sql01.sql",
        """\
-- Generado por sp_help_revlogin en CU-SQL01, 2024-11-04 (migración a CU-SQL03)
-- Login: granos_api
CREATE LOGIN [granos_api] WITH PASSWORD = {V} HASHED, SID = 0x5C2E91A0B7D84F3A9E61C0D2F4B8A713, DEFAULT_DATABASE = [Granos], CHECK_POLICY = ON
-- Login: reportes
CREATE LOGIN [reportes] WITH PASSWORD = {V2} HASHED, SID = 0x0A7F33C1E2D945B6871F2C9E5D403B88, DEFAULT_DATABASE = [CU_ERP], CHECK_POLICY = OFF
""",
        "t32_mssql_hash",
        False,
    ),
    (
        "db/granos/procs/usp_ContratosPendientes.sql",
        """\
CREATE OR ALTER PROCEDURE dbo.usp_ContratosPendientes
    @Cosecha CHAR(5) = '24/25'
AS
BEGIN
    SET NOCOUNT ON;
    -- consulta al linked server del corredor
    SELECT c.NroContrato, c.Producto, c.Toneladas, c.Precio
    FROM OPENDATASOURCE('SQLNCLI',
        'Data Source=10.60.1.20;User ID=cu_lectura;Password={V}').Corredor.dbo.Contratos AS c
    WHERE c.Cosecha = @Cosecha AND c.Estado = 'PEND';
END
GO
""",
        "t32_sql_pw",
        True,
    ),
    (
        "db/granos/seed/contratos_demo.sql",
        """\
-- Datos de demostración para el ambiente de QA
INSERT INTO dbo.Contratos (NroContrato, Producto, Toneladas, Precio, Estado) VALUES
('{V}', 'SOJA', 250.000, 298.50, 'PEND'),
('{V2}', 'MAIZ', 600.000, 171.20, 'CUMP'),
('{V3}', 'TRIGO', 120.000, 212.00, 'PEND');
""",
        "t32_lot_id",
        False,
    ),
    (
        "services/erp-bridge/odoo_sync.py",
        """\
\"\"\"Sincroniza socios y cuentas corrientes entre Odoo (filial Brasil) y Surco.\"\"\"

import xmlrpc.client

ODOO_URL = "https://erp.cosechaunida.com.br"
ODOO_DB = "cu_brasil"
ODOO_USER = "integracao@cosechaunida.com.br"
ODOO_API_KEY = "{V}"

common = xmlrpc.client.ServerProxy(f"{ODOO_URL}/xmlrpc/2/common")
uid = common.authenticate(ODOO_DB, ODOO_USER, ODOO_API_KEY, {})
models = xmlrpc.client.ServerProxy(f"{ODOO_URL}/xmlrpc/2/object")
""",
        "t32_odoo_key",
        True,
    ),
    (
        "services/erp-bridge/config/erp.yaml",
        """\
sap_b1:
  service_layer: https://cu-erp02:50000/b1s/v1
  company_db: SBO_COSECHAUNIDA
  user: intsync
  password: {V}
odoo:
  url: https://erp.cosechaunida.com.br
  db: cu_brasil
  user: integracao@cosechaunida.com.br
  api_key: {V2}
""",
        "t32_yaml_ref",
        False,
    ),
    (
        "services/erp-bridge/config/erp.prod.yaml",
        """\
sap_b1:
  service_layer: https://cu-erp02:50000/b1s/v1
  company_db: SBO_COSECHAUNIDA
  user: intsync
  password: {V}
odoo:
  url: https://erp.cosechaunida.com.br
  db: cu_brasil
  user: integracao@cosechaunida.com.br
  api_key: {V2}
""",
        "t32_sops",
        False,
    ),
    (
        "services/erp-bridge/src/main/resources/application-prod.properties",
        """\
spring.application.name=erp-bridge
spring.datasource.url=jdbc:sqlserver://CU-SQL01:1433;databaseName=CU_ERP;encrypt=true;trustServerCertificate=true
spring.datasource.username=erp_bridge
spring.datasource.password={V}
sap.b1.base-url=https://cu-erp02:50000/b1s/v1
sap.b1.user=intsync
sap.b1.password={V2}
""",
        "t32_jasypt",
        False,
    ),
    (
        "services/erp-bridge/src/main/resources/application-local.properties",
        """\
spring.datasource.url=jdbc:sqlserver://localhost:1433;databaseName=CU_ERP;encrypt=false
spring.datasource.username=sa
spring.datasource.password={V}
logging.level.org.hibernate.SQL=DEBUG
""",
        "t32_weak_pw",
        True,
    ),
    (
        "services/erp-bridge/src/main/java/coop/cosechaunida/erp/SapSession.java",
        """\
package coop.cosechaunida.erp;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;

public final class SapSession {
    private static final String LOGIN_BODY =
        "{\\"CompanyDB\\":\\"SBO_COSECHAUNIDA\\",\\"UserName\\":\\"intsync\\",\\"Password\\":\\"{V}\\"}";

    public static HttpRequest loginRequest(String baseUrl) {
        return HttpRequest.newBuilder(URI.create(baseUrl + "/Login"))
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(LOGIN_BODY))
            .build();
    }
}
""",
        "t32_pw",
        True,
    ),
    (
        "services/granos-feed/matba_rofex.py",
        """\
\"\"\"Cotizaciones de futuros (Matba Rofex) para la pizarra de la mesa de granos.\"\"\"

import pyRofex

pyRofex.initialize(
    user="cu_mesagranos",
    password="{V}",
    account="REM8412",
    environment=pyRofex.Environment.LIVE,
)

def pizarra():
    return pyRofex.get_market_data("SOJ.ROS/MAY25", [pyRofex.MarketDataEntry.LAST])
""",
        "t32_pw",
        True,
    ),
    (
        "services/logistica/ferrocarril/edi_sftp.sh",
        """\
#!/bin/sh
# Envío de avisos de carga al ferrocarril (EDI) - corre en cu-batch01
HOST=sftp.nuevocentral.com.ar
USUARIO=cosechaunida
export SSHPASS='{V}'
sshpass -e sftp -oBatchMode=no -b - "$USUARIO@$HOST" <<EOF
cd /in/avisos
put /var/spool/edi/avisos_*.txt
bye
EOF
""",
        "t32_pw",
        True,
    ),
    (
        "services/logistica/camiones/flota.csv",
        """\
patente,chofer,imei_gps,rfid_tarjeta,transportista
AF123KD,Juan Pereyra,{V},,Transportes del Sur
AE981LP,Marta Gómez,{V2},,Transportes del Sur
AD447QT,Luis Acosta,{V3},,Fletes Pampa
""",
        "t32_imei",
        False,
    ),
    (
        "services/hacienda/trazabilidad/senasa_export.json",
        """\
{
  "establecimiento": "RENSPA 02.041.0.12345/00",
  "fecha": "2024-10-18",
  "animales": [
    {"caravana": "{V}", "categoria": "novillo", "kg": 412},
    {"caravana": "{V2}", "categoria": "vaquillona", "kg": 356}
  ]
}
""",
        "t32_rfid",
        False,
    ),
]

# ---------------------------------------------------------------------------------------------
# Weather data vendors and drone imagery pipelines (Python, Airflow, notebooks, rclone)
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    (
        "pipelines/clima/pollers/openweather.py",
        """\
\"\"\"Pronóstico horario para cada estación virtual (un punto por lote).\"\"\"

import httpx

OWM_URL = "https://api.openweathermap.org/data/3.0/onecall"
OWM_KEY = "{V}"  # plan One Call 3.0, cuenta clima@surco.app


async def pronostico(lat: float, lon: float) -> dict:
    async with httpx.AsyncClient(timeout=20) as client:
        r = await client.get(
            OWM_URL,
            params={"lat": lat, "lon": lon, "appid": OWM_KEY, "units": "metric", "lang": "es"},
        )
        r.raise_for_status()
        return r.json()
""",
        "t32_weather_key",
        True,
    ),
    (
        "pipelines/clima/pollers/meteoblue.py",
        """\
import os

import httpx

MB_URL = "https://my.meteoblue.com/packages/basic-1h_agro-1h"
MB_KEY = {V}


def agro(lat, lon):
    return httpx.get(MB_URL, params={"lat": lat, "lon": lon, "apikey": MB_KEY, "format": "json"}).json()
""",
        "t32_py_ref",
        False,
    ),
    (
        "pipelines/clima/config/vendors.toml",
        """\
# Proveedores de datos meteorológicos
[openweather]
base_url = "https://api.openweathermap.org/data/3.0"
api_key = "{V}"
rate_limit_per_min = 60

[tomorrow]
base_url = "https://api.tomorrow.io/v4"
api_key = "{V2}"
fields = ["temperature", "precipitationIntensity", "soilMoistureVolumetric0To10"]

[inta_sft]
host = "sft.inta.gob.ar"
""",
        "t32_weather_key",
        True,
    ),
    (
        "pipelines/clima/config/vendors.example.toml",
        """\
[openweather]
base_url = "https://api.openweathermap.org/data/3.0"
api_key = "{V}"

[tomorrow]
base_url = "https://api.tomorrow.io/v4"
api_key = "{V2}"
""",
        "t32_placeholder",
        False,
    ),
    (
        "pipelines/clima/ftp/descarga_estaciones.sh",
        """\
#!/bin/bash
# Descarga diaria de datos de estaciones del proveedor (FTP plano, sin TLS; ver TI-884)
cd /data/clima/crudo || exit 1
wget -q -N "ftp://cosechaunida:{V}@ftp.agroclima-datos.com.ar/estaciones/$(date +%Y%m%d)/*.csv"
python3 /opt/clima/importar.py /data/clima/crudo
""",
        "t32_url_pw",
        True,
    ),
    (
        "pipelines/clima/docs/vendors.md",
        """\
# Weather vendors

| Vendor      | Use                          | Key lives in                          |
|-------------|------------------------------|---------------------------------------|
| OpenWeather | hourly forecast per lot      | `{V}` |
| Tomorrow.io | soil moisture model          | Vault `secret/clima/tomorrow`         |
| Agroclima   | station CSV drop (FTP)       | Vault `secret/clima/agroclima-ftp`    |

Keys are rotated every 180 days; the poller reloads them on SIGHUP.
""",
        "t32_clima_arn",
        False,
    ),
    (
        "pipelines/drones/airflow/dags/ortomosaicos.py",
        """\
from datetime import datetime

from airflow import DAG
from airflow.providers.amazon.aws.transfers.local_to_s3 import LocalFilesystemToS3Operator
from airflow.providers.docker.operators.docker import DockerOperator

with DAG("ortomosaicos_odm", start_date=datetime(2024, 8, 1), schedule="@hourly", catchup=False) as dag:
    odm = DockerOperator(
        task_id="odm",
        image="opendronemap/odm:3.5.4",
        command="--project-path /datasets {{ dag_run.conf['vuelo'] }} --dsm --orthophoto-resolution 3",
        mounts=[],
        environment={
            "PLANET_API_KEY": "{V}",
        },
    )
""",
        "t32_planet_key",
        True,
    ),
    (
        "pipelines/drones/airflow/airflow.cfg",
        """\
[core]
executor = CeleryExecutor
fernet_key = {V}
load_examples = False

[database]
sql_alchemy_conn_cmd = cat /run/secrets/airflow_db_conn

[webserver]
base_url = https://airflow.surco.internal
""",
        "t32_b64_fernet",
        True,
    ),
    (
        "pipelines/drones/airflow/connections.yaml",
        """\
# airflow connections import connections.yaml
s3_ortomosaicos:
  conn_type: aws
  extra:
    region_name: sa-east-1
    aws_access_key_id: {V}
    aws_secret_access_key: {V2}
""",
        "t32_redacted",
        False,
    ),
    (
        "pipelines/drones/rclone/rclone.conf",
        """\
[dji-nas]
type = sftp
host = cu-nas01.cu.local
user = vuelos
pass = {V}

[s3-ortos]
type = s3
provider = AWS
env_auth = true
region = sa-east-1
""",
        "t32_rclone_obscured",
        True,
    ),
    (
        "pipelines/drones/upload/subir_vuelo.py",
        """\
\"\"\"Sube las imágenes crudas del vuelo al bucket de procesamiento.\"\"\"

import sys

import boto3

s3 = boto3.client(
    "s3",
    region_name="sa-east-1",
    {V}
)

for path in sys.argv[1:]:
    s3.upload_file(path, "cu-drones-crudo", f"vuelos/{path.rsplit('/', 1)[-1]}")
""",
        "t32_aws_boto",
        True,
    ),
    (
        "pipelines/drones/notebooks/ndvi_lote12.ipynb",
        """\
{
 "cells": [
  {
   "cell_type": "markdown",
   "metadata": {},
   "source": ["# NDVI lote 12 - campaña 24/25"]
  },
  {
   "cell_type": "code",
   "execution_count": 3,
   "metadata": {},
   "outputs": [],
   "source": [
    "import rasterio\\n",
    "from azure.storage.blob import BlobServiceClient\\n",
    "conn = \\"DefaultEndpointsProtocol=https;AccountName=cudronesorto;AccountKey={V};EndpointSuffix=core.windows.net\\"\\n",
    "svc = BlobServiceClient.from_connection_string(conn)\\n",
    "blob = svc.get_blob_client(\\"ortos\\", \\"2024-11-03/lote12_ms.tif\\")"
   ]
  }
 ],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "t32_azure_key",
        True,
    ),
    (
        "pipelines/drones/notebooks/modelo_malezas.ipynb",
        """\
{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 1,
   "metadata": {},
   "outputs": [],
   "source": [
    "from huggingface_hub import login\\n",
    "login(token=\\"{V}\\")\\n",
    "from transformers import AutoModelForImageClassification\\n",
    "model = AutoModelForImageClassification.from_pretrained(\\"surcolabs/malezas-vit-base\\")"
   ]
  }
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "t32_hf",
        True,
    ),
    (
        "pipelines/drones/notebooks/exploracion_sentinel.ipynb",
        """\
{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 7,
   "metadata": {},
   "outputs": [
    {
     "name": "stdout",
     "output_type": "stream",
     "text": [
      "escena: S2B_MSIL2A_20241102T134209_N0511_R124_T20HPH\\n",
      "checksum: {V}\\n"
     ]
    }
   ],
   "source": ["print_scene_info(scene)"]
  }
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "t32_sha256",
        False,
    ),
    (
        "pipelines/drones/odm/docker-compose.yml",
        """\
services:
  nodeodm:
    image: opendronemap/nodeodm:3.5.4
    ports:
      - "3000:3000"
    command: --token {V} --max-concurrency 2
  webodm:
    image: opendronemap/webodm_webapp:2.5.4
    environment:
      WO_HOST: odm.surco.internal
""",
        "t32_hex32",
        True,
    ),
    (
        "pipelines/drones/docs/pipeline.es.md",
        """\
# Pipeline de imágenes de drones

1. El piloto sube la tarjeta SD a `\\\\CU-NAS01\\vuelos` (usuario `vuelos`).
2. `subir_vuelo.py` copia a `s3://cu-drones-crudo/vuelos/`.
3. Airflow dispara ODM y publica el ortomosaico.

Las credenciales de AWS **no** van en el script: usar el perfil `drones` de
`~/.aws/credentials`. Para probar localmente se puede usar el ejemplo oficial:

```ini
[drones]
{V}
```
""",
        "t32_aws_example",
        False,
    ),
    (
        "pipelines/drones/requirements.lock",
        """\
rasterio==1.4.1 \\
    --hash=sha256:{V}
numpy==2.1.2 \\
    --hash=sha256:{V2}
boto3==1.35.49 \\
    --hash=sha256:{V3}
""",
        "t32_sha256",
        False,
    ),
]

# ---------------------------------------------------------------------------------------------
# Cloud infrastructure and CI (Terraform, Kubernetes, Helm, Compose, Ansible, Docker, pipelines)
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    (
        "infra/terraform/envs/prod/providers.tf",
        """\
terraform {
  required_version = ">= 1.6"
  backend "s3" {
    bucket = "cu-terraform-state"
    key    = "prod/surco.tfstate"
    region = "sa-east-1"
  }
}

provider "aws" {
  region     = "sa-east-1"
  {V}
}
""",
        "t32_aws_tf",
        True,
    ),
    (
        "infra/terraform/modules/rds/main.tf",
        """\
resource "aws_db_instance" "surco" {
  identifier              = "surco-prod"
  engine                  = "postgres"
  engine_version          = "16.3"
  instance_class          = "db.r6g.large"
  username                = "surco_admin"
  password                = {V}
  backup_retention_period = 14
  deletion_protection     = true
}
""",
        "t32_tf_ref",
        False,
    ),
    (
        "infra/terraform/envs/staging/terraform.tfvars",
        """\
environment       = "staging"
db_instance_class = "db.t4g.medium"
db_password       = "{V}"
mqtt_admin_pass   = "{V2}"
alert_emails      = ["ti@cosechaunida.coop"]
""",
        "t32_pw",
        True,
    ),
    (
        "infra/terraform/modules/iot/mqtt_broker.tf",
        """\
resource "azurerm_linux_virtual_machine" "mqtt" {
  name                = "vm-cu-mqtt-01"
  resource_group_name = azurerm_resource_group.iot.name
  location            = "brazilsouth"
  size                = "Standard_B2s"
  admin_username      = "cuadmin"

  admin_ssh_key {
    username   = "cuadmin"
    public_key = "{V}"
  }
}
""",
        "t32_ssh_pub",
        False,
    ),
    (
        "infra/terraform/.terraformrc",
        """\
credentials "app.terraform.io" {
  token = "{V}"
}

plugin_cache_dir = "$HOME/.terraform.d/plugin-cache"
""",
        "t32_tfc_token",
        True,
    ),
    (
        "infra/terraform/modules/azure/sp.auto.tfvars",
        """\
# service principal para el pipeline de drones (Blob Storage + Batch)
arm_tenant_id     = "7d1c2f4e-3b8a-4f19-9c2e-5a6d0b1e8f77"
arm_client_id     = "c5e8a2d1-94f0-4b7e-a1c3-2d9f6e0b4a58"
arm_client_secret = "{V}"
""",
        "t32_azure_secret",
        True,
    ),
    (
        "infra/k8s/surco/secret-db.yaml",
        """\
apiVersion: v1
kind: Secret
metadata:
  name: surco-db
  namespace: surco
type: Opaque
data:
  username: c3VyY29fYXBw
  password: {V}
""",
        "t32_b64_pw",
        True,
    ),
    (
        "infra/k8s/surco/sealed-secret-db.yaml",
        """\
apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: surco-db
  namespace: surco
spec:
  encryptedData:
    password: {V}
    username: {V2}
  template:
    metadata:
      name: surco-db
""",
        "t32_sealed",
        False,
    ),
    (
        "infra/k8s/riego/deployment-ingest.yaml",
        """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: riego-ingest
  namespace: riego
spec:
  replicas: 2
  template:
    spec:
      containers:
        - name: ingest
          image: ghcr.io/surcolabs/riego-ingest:1.9.2
          env:
            - name: MQTT_URL
              value: mqtts://mqtt.riego.surco.app:8883
            - name: MQTT_USERNAME
              value: riego-ingest
            - name: MQTT_PASSWORD
              value: "{V}"
            - name: CHIRPSTACK_API_TOKEN
              valueFrom:
                secretKeyRef:
                  name: chirpstack-api
                  key: token
""",
        "t32_mqtt_pw",
        True,
    ),
    (
        "infra/k8s/riego/deployment-ingest.digest.yaml",
        """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: riego-ingest
  namespace: riego
spec:
  template:
    spec:
      containers:
        - name: ingest
          image: ghcr.io/surcolabs/riego-ingest@{V}
          env:
            - name: MQTT_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: riego-mqtt
                  key: password
""",
        "t32_image_digest",
        False,
    ),
    (
        "infra/k8s/riego/chirpstack-api-secret.yaml",
        """\
apiVersion: v1
kind: Secret
metadata:
  name: chirpstack-api
  namespace: riego
type: Opaque
stringData:
  token: {V}
""",
        "t32_chirpstack_token",
        True,
    ),
    (
        "infra/helm/surco/values-prod.yaml",
        """\
image:
  repository: ghcr.io/surcolabs/surco-api
  tag: "2.31.0"

postgresql:
  auth:
    username: surco_app
    password: "{V}"
    database: surco

redis:
  auth:
    enabled: true
    password: "{V2}"

ingress:
  hosts:
    - api.surco.app
""",
        "t32_pw",
        True,
    ),
    (
        "infra/helm/surco/values.yaml",
        """\
postgresql:
  auth:
    username: surco_app
    # set in values-<env>.yaml or with --set; existingSecret wins if present
    password: "{V}"
    existingSecret: ""

redis:
  auth:
    enabled: true
    password: "{V2}"
""",
        "t32_placeholder",
        False,
    ),
    (
        "infra/helm/surco/templates/secret.yaml",
        """\
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "surco.fullname" . }}-db
type: Opaque
data:
  password: {V}
""",
        "t32_helm_ref",
        False,
    ),
    (
        "infra/kubeconfig/cu-rancher.yaml",
        """\
apiVersion: v1
kind: Config
clusters:
  - name: cu-onprem
    cluster:
      server: https://rancher.cu.local/k8s/clusters/c-m-7x2kq
users:
  - name: cu-onprem
    user:
      token: kubeconfig-u-4fh2z:{V}
contexts:
  - name: cu-onprem
    context:
      cluster: cu-onprem
      user: cu-onprem
current-context: cu-onprem
""",
        "t32_rancher_token",
        True,
    ),
    (
        "infra/docker/docker-compose.dev.yml",
        """\
services:
  db:
    image: postgis/postgis:16-3.4
    environment:
      POSTGRES_DB: surco
      POSTGRES_USER: surco
      POSTGRES_PASSWORD: {V}
    ports:
      - "5432:5432"
  api:
    build: ../../services/surco-api
    environment:
      DATABASE_URL: postgres://surco:{V}@db:5432/surco
    depends_on: [db]
""",
        "t32_weak_pw",
        True,
    ),
    (
        "infra/docker/docker-compose.prod.yml",
        """\
services:
  mosquitto:
    image: eclipse-mosquitto:2.0.20
    volumes:
      - ./mosquitto:/mosquitto/config:ro
  api:
    image: ghcr.io/surcolabs/surco-api:2.31.0
    environment:
      DATABASE_PASSWORD: {V}
      MQTT_PASSWORD_FILE: /run/secrets/mqtt_password
    secrets:
      - mqtt_password
secrets:
  mqtt_password:
    external: true
""",
        "t32_env_ref",
        False,
    ),
    (
        "services/surco-api/Dockerfile",
        """\
FROM python:3.12-slim AS base
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir \\
      --index-url https://surco-ci:{V}@pypi.surco.internal/simple/ \\
      -r requirements.txt
COPY . .
ENV DJANGO_SETTINGS_MODULE=surco.settings.production
CMD ["gunicorn", "surco.wsgi", "-b", "0.0.0.0:8000"]
""",
        "t32_url_pw",
        True,
    ),
    (
        "services/clima-worker/Dockerfile",
        """\
FROM node:20-alpine
WORKDIR /srv
COPY package*.json ./
RUN --mount=type=secret,id=npmrc,target=/root/.npmrc npm ci --omit=dev
COPY . .
ENV OWM_API_KEY={V}
CMD ["node", "worker.js"]
""",
        "t32_weather_key",
        True,
    ),
    (
        "infra/ansible/group_vars/silos/vault.yml",
        """\
{V}
""",
        "t32_ansible_vault",
        False,
    ),
    (
        "infra/ansible/group_vars/silos/vars.yml",
        """\
mosquitto_bridge_host: mqtt.riego.surco.app
mosquitto_bridge_user: silo-gw
mosquitto_bridge_password: "{V}"
scada_modbus_host: 10.40.2.15
""",
        "t32_mqtt_pw",
        True,
    ),
    (
        "infra/ansible/inventory/plantas.ini",
        """\
[acopio]
silo-gw-venado ansible_host=10.40.2.10
silo-gw-pergamino ansible_host=10.41.2.10

[acopio:vars]
ansible_user=cuadmin
ansible_ssh_pass={V}
ansible_become_pass={V}

[windows]
cu-sql01 ansible_host=10.10.1.21 ansible_user=CU\\ansible ansible_connection=winrm
""",
        "t32_pw",
        True,
    ),
    (
        "infra/ansible/roles/mosquitto/defaults/main.yml",
        """\
mosquitto_listener_port: 8883
mosquitto_users:
  - name: riegonode-fw
    password: "{{ vault_mosquitto_riegonode_fw }}"
  - name: telegraf
    password: "{V}"
mosquitto_password_file: /etc/mosquitto/passwd
""",
        "t32_env_ref",
        False,
    ),
    (
        "infra/ssh/deploy_silo_gw",
        """\
{V}
""",
        "t32_openssh_key",
        True,
    ),
    (
        "infra/ssh/deploy_silo_gw.pub",
        """\
{V}
""",
        "t32_ssh_pub",
        False,
    ),
    (
        "infra/tls/mqtt.riego.surco.app.pem",
        """\
# cadena del broker MQTT (Let's Encrypt), para cargar en el firmware
{V}
""",
        "t32_cert",
        False,
    ),
    (
        "infra/tls/mqtt.riego.surco.app.key",
        """\
{V}
""",
        "t32_ec_key",
        True,
    ),
    (
        "infra/gcp/sa-bigquery-granos.json",
        """\
{
  "type": "service_account",
  "project_id": "cu-analitica",
  "private_key_id": "3f7a91c0d2b84e6fa1c95d0e7b2a4f6c8d1e3a5b",
  "private_key": "{V}",
  "client_email": "granos-etl@cu-analitica.iam.gserviceaccount.com",
  "client_id": "104882736152093847561",
  "auth_uri": "https://accounts.google.com/o/oauth2/auth",
  "token_uri": "https://oauth2.googleapis.com/token"
}
""",
        "t32_gcp_pk",
        True,
    ),
    (
        ".github/workflows/firmware-release.yml",
        """\
name: firmware-release
on:
  push:
    tags: ["fw-v*"]
jobs:
  build:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.12"
      - run: pip install platformio
      - run: pio run -e riegonode_v3
      - name: Publish to OTA bucket
        env:
          AWS_ACCESS_KEY_ID: ${{ secrets.OTA_AWS_ACCESS_KEY_ID }}
          AWS_SECRET_ACCESS_KEY: {V}
        run: aws s3 cp .pio/build/riegonode_v3/firmware.bin s3://cu-ota/riegonode/${GITHUB_REF_NAME}.bin
""",
        "t32_ci_ref",
        False,
    ),
    (
        ".github/workflows/portal-deploy.yml",
        """\
name: portal-deploy
on:
  push:
    branches: [main]
jobs:
  deploy:
    runs-on: ubuntu-24.04
    env:
      REGISTRY_USER: surco-ci
      REGISTRY_TOKEN: {V}
    steps:
      - uses: actions/checkout@v4
      - run: echo "$REGISTRY_TOKEN" | docker login ghcr.io -u "$REGISTRY_USER" --password-stdin
      - run: docker build -t ghcr.io/surcolabs/portal:${{ github.sha }} portal/
      - run: docker push ghcr.io/surcolabs/portal:${{ github.sha }}
""",
        "t32_github",
        True,
    ),
    (
        ".gitlab-ci.yml",
        """\
stages: [test, build, deploy]

variables:
  PIP_INDEX_URL: https://pypi.surco.internal/simple/
  SONAR_HOST_URL: https://sonar.surco.internal
  SONAR_TOKEN: "{V}"

test:
  stage: test
  image: python:3.12
  script:
    - pip install -r requirements-dev.txt
    - pytest -q

sonar:
  stage: test
  image: sonarsource/sonar-scanner-cli:11
  script:
    - sonar-scanner -Dsonar.projectKey=surco-api
""",
        "t32_sonar",
        True,
    ),
    (
        "infra/gitlab-runner/config.toml",
        """\
concurrent = 4

[[runners]]
  name = "cu-runner-01"
  url = "https://gitlab.surco.internal"
  token = "{V}"
  executor = "docker"
  [runners.docker]
    image = "alpine:3.20"
    privileged = false
""",
        "t32_gitlab_runner",
        True,
    ),
    (
        "azure-pipelines.yml",
        """\
trigger:
  branches:
    include: [main]

pool:
  name: CU-OnPrem

variables:
  buildConfiguration: Release
  nugetFeed: https://pkgs.dev.azure.com/cosechaunida/_packaging/cu-legacy/nuget/v3/index.json
  NUGET_API_KEY: {V}

steps:
  - task: DotNetCoreCLI@2
    inputs:
      command: build
      projects: legacy/**/*.csproj
  - script: dotnet nuget push **/*.nupkg --source $(nugetFeed) --api-key $(NUGET_API_KEY)
""",
        "t32_nuget",
        True,
    ),
    (
        "legacy/Jenkinsfile",
        """\
pipeline {
    agent { label 'windows-cu-build' }
    environment {
        SQL_CONN = "Server=CU-SQL01;Database=CU_ERP;User Id=jenkins_deploy;Password={V};"
    }
    stages {
        stage('Build') {
            steps { bat 'msbuild Acopio.sln /p:Configuration=Release' }
        }
        stage('Migrate') {
            steps { bat 'DbUp.Runner.exe "%SQL_CONN%"' }
        }
    }
}
""",
        "t32_sql_pw",
        True,
    ),
    (
        "infra/jenkins/credentials.xml",
        """\
<?xml version='1.1' encoding='UTF-8'?>
<com.cloudbees.plugins.credentials.SystemCredentialsProvider plugin="credentials@1371.vfee6b_095f0a_3">
  <domainCredentialsMap class="hudson.util.CopyOnWriteMap$Hash">
    <entry>
      <com.cloudbees.plugins.credentials.domains.Domain><specifications/></com.cloudbees.plugins.credentials.domains.Domain>
      <java.util.concurrent.CopyOnWriteArrayList>
        <com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
          <id>sql-deploy</id>
          <username>jenkins_deploy</username>
          <password>{V}</password>
        </com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
      </java.util.concurrent.CopyOnWriteArrayList>
    </entry>
  </domainCredentialsMap>
</com.cloudbees.plugins.credentials.SystemCredentialsProvider>
""",
        "t32_jenkins_enc",
        False,
    ),
    (
        "services/logistica/.npmrc",
        """\
@surcolabs:registry=https://npm.pkg.github.com/
//npm.pkg.github.com/:_authToken={V}
registry=https://registry.npmjs.org/
""",
        "t32_github",
        True,
    ),
    (
        "services/insumos/frontend/.npmrc",
        """\
@surcolabs:registry=https://registry.npmjs.org/
//registry.npmjs.org/:_authToken={V}
""",
        "t32_npm",
        True,
    ),
    (
        "legacy/NuGet.Config",
        """\
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="cu-legacy" value="https://pkgs.dev.azure.com/cosechaunida/_packaging/cu-legacy/nuget/v3/index.json" />
  </packageSources>
  <packageSourceCredentials>
    <cu-legacy>
      <add key="Username" value="build" />
      <add key="ClearTextPassword" value="{V}" />
    </cu-legacy>
  </packageSourceCredentials>
</configuration>
""",
        "t32_azdo_pat",
        True,
    ),
    (
        "infra/docker/config.json",
        """\
{
  "auths": {
    "ghcr.io": {
      "auth": "{V}"
    },
    "harbor.cu.local": {
      "auth": "{V2}"
    }
  }
}
""",
        "t32_docker_auth",
        True,
    ),
    (
        "infra/aws/credentials",
        """\
[default]
region = sa-east-1

[drones]
{V}

[granos-etl]
{V2}
""",
        "t32_aws_ini",
        True,
    ),
    (
        "infra/vault/policies/README.md",
        """\
# Vault en la cooperativa

Para operar desde la notebook:

```sh
export VAULT_ADDR=https://vault.cu.local:8200
export VAULT_TOKEN={V}
vault kv get secret/riego/mqtt
```

(Token de Ignacio, expira el viernes; después pedir uno nuevo con `vault login -method=oidc`.)
""",
        "t32_vault_token",
        True,
    ),
]

# ---------------------------------------------------------------------------------------------
# Ops tooling, alerting, docs, runbooks, tickets, chat exports, logs and i18n
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    (
        "ops/alertas/telegram_bot.py",
        """\
\"\"\"Bot de Telegram que avisa a los encargados de planta cuando un silo supera 35 °C.\"\"\"

import telebot

BOT_TOKEN = "{V}"
CHAT_ENCARGADOS = -1002217734461

bot = telebot.TeleBot(BOT_TOKEN, parse_mode="HTML")


def avisar(silo: str, temp: float) -> None:
    bot.send_message(CHAT_ENCARGADOS, f"<b>{silo}</b>: {temp:.1f} °C")
""",
        "t32_telegram",
        True,
    ),
    (
        "ops/alertas/Send-TeamsAlert.ps1",
        """\
param(
    [Parameter(Mandatory)] [string] $Titulo,
    [Parameter(Mandatory)] [string] $Texto
)
# Canal "Infra - Alertas" del equipo TI
$webhook = '{V}'
$body = @{ title = $Titulo; text = $Texto } | ConvertTo-Json
Invoke-RestMethod -Uri $webhook -Method Post -Body $body -ContentType 'application/json'
""",
        "t32_teams_webhook",
        True,
    ),
    (
        "services/riego-scheduler/internal/notify/slack.go",
        """\
package notify

import (
	"bytes"
	"encoding/json"
	"net/http"
)

const webhookURL = "{V}"

func ValveFault(node, msg string) error {
	payload, _ := json.Marshal(map[string]string{"text": ":warning: " + node + ": " + msg})
	_, err := http.Post(webhookURL, "application/json", bytes.NewReader(payload))
	return err
}
""",
        "t32_slack_webhook",
        True,
    ),
    (
        "ops/chatops/bot.py",
        """\
import os

from slack_bolt import App

app = App(
    token="{V}",
    signing_secret=os.environ["SLACK_SIGNING_SECRET"],
)


@app.command("/silo")
def silo_status(ack, respond, command):
    ack()
    respond(f"Consultando {command['text']}...")
""",
        "t32_slack_bot",
        True,
    ),
    (
        "ops/datadog/datadog.yaml",
        """\
## Agente de Datadog en cu-batch01
api_key: {V}
site: datadoghq.com
hostname: cu-batch01
tags:
  - env:prod
  - sitio:venado-tuerto
logs_enabled: true
""",
        "t32_datadog",
        True,
    ),
    (
        "ops/grafana/provisioning/datasources/influx.yaml",
        """\
apiVersion: 1
datasources:
  - name: Sensores
    type: influxdb
    url: https://influx.cu.internal:8086
    jsonData:
      version: Flux
      organization: cosecha-unida
      defaultBucket: sensores
    secureJsonData:
      token: $__env{INFLUX_TOKEN}
  - name: Granos (SQL Server)
    type: mssql
    url: CU-SQL01:1433
    user: grafana_ro
    secureJsonData:
      password: {V}
""",
        "t32_pw",
        True,
    ),
    (
        "portal/socios/asistente/agronomo.ts",
        """\
import OpenAI from 'openai';

// Asistente del portal: responde consultas sobre liquidaciones y recomendaciones de siembra.
const openai = new OpenAI({ apiKey: '{V}' });

export async function responder(pregunta: string, contexto: string) {
  const r = await openai.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [
      { role: 'system', content: 'Sos el asistente agronómico de la cooperativa.' + contexto },
      { role: 'user', content: pregunta },
    ],
  });
  return r.choices[0].message.content;
}
""",
        "t32_openai",
        True,
    ),
    (
        "ops/jira/sync_incidentes.py",
        """\
from jira import JIRA

jira = JIRA(
    server="https://cosechaunida.atlassian.net",
    basic_auth=("ti.automatizacion@cosechaunida.coop", "{V}"),
)

for issue in jira.search_issues('project = INFRA AND labels = riego AND status != Done'):
    print(issue.key, issue.fields.summary)
""",
        "t32_atlassian",
        True,
    ),
    (
        "services/surco-api/.sentryclirc",
        """\
[defaults]
url = https://sentry.io/
org = surco-labs
project = surco-api

[auth]
token = {V}
""",
        "t32_sentry_token",
        True,
    ),
    (
        "libs/surco-sdk-python/.pypirc",
        """\
[distutils]
index-servers =
    pypi
    surco

[pypi]
username = __token__
password = {V}

[surco]
repository = https://pypi.surco.internal/
username = surco-ci
""",
        "t32_pypi",
        True,
    ),
    (
        "services/liquidaciones/banco/clave_intercambio.asc",
        """\
# Clave para firmar los archivos de pagos a productores (Banco Nación - interbanking)
{V}
""",
        "t32_pgp_private",
        True,
    ),
    (
        "legacy/Bascula.Api/requests/balanza.http",
        """\
### Último pesaje de la balanza 2
GET https://cu-bascula01.cu.local/api/pesajes/ultimo?balanza=2
Authorization: Basic {V}
Accept: application/json

### Ticket por número
GET https://cu-bascula01.cu.local/api/tickets/000871234
Authorization: Basic {V}
""",
        "t32_basic_b64",
        True,
    ),
    (
        "docs/integraciones/corredores.pt-BR.md",
        """\
# Integração com corretoras (API de contratos)

A corretora consulta os contratos pendentes assim:

```bash
curl -s https://api.surco.app/v2/granos/contratos?estado=PEND \\
  -H "Authorization: Bearer {V}"
```

O token acima é da corretora Agrosul (escopo `granos:read`), gerado em 12/09.
""",
        "t32_jwt",
        True,
    ),
    (
        "docs/integraciones/surco-api.en.md",
        """\
# Surco API for integrators

Every request carries your integration key:

```http
GET /v2/lotes HTTP/1.1
Host: api.surco.app
X-Surco-Key: {V}
```

Keys are issued per integrator in the admin console (Settings > Integrations). The key above
belongs to the Agroinsumos Litoral sandbox account we share with their developers.
""",
        "t32_surco_key",
        True,
    ),
    (
        "runbooks/restaurar-bascula.md",
        """\
# Runbook: restaurar la base de la balanza (CU-SQL01\\BASCULA)

1. Conectarse por RDP a CU-SQL01 con la cuenta de TI.
2. Abrir SSMS, autenticación SQL Server:
   - usuario: `sa`
   - contraseña: `{V}`
3. Restaurar el último `.bak` de `\\\\CU-NAS01\\backups\\bascula`.
4. Avisar en #planta-venado que la balanza vuelve a operar.
""",
        "t32_weak_pw",
        True,
    ),
    (
        "tickets/INFRA-1187.md",
        """\
**INFRA-1187** — Acceso al portal del proveedor de datos meteorológicos

> *Reportado por:* Lucía Benítez (Agronomía) · *Estado:* Resuelto

Hola, ya quedó creada la cuenta para el equipo de agronomía en el portal de Agroclima:

- URL: https://portal.agroclima-datos.com.ar
- usuario: agronomia@cosechaunida.coop
- contraseña temporal: {V}

Por favor cambiarla en el primer ingreso.
""",
        "t32_pw",
        True,
    ),
    (
        "exports/slack/infra-riego/2024-10-22.json",
        """\
[
  {
    "type": "message",
    "user": "U04KQ2M7T9L",
    "text": "se cayó el bridge del silo de Pergamino, alguien tiene la clave del broker?",
    "ts": "1729604101.228719"
  },
  {
    "type": "message",
    "user": "U03FJ8V1B2C",
    "text": "usuario silo-gw, clave `{V}` (después la rotamos)",
    "ts": "1729604188.530019"
  }
]
""",
        "t32_mqtt_pw",
        True,
    ),
    (
        "ops/red/mikrotik-planta-venado.rsc",
        """\
# RouterOS export - planta Venado Tuerto
/snmp community
set [ find default=yes ] disabled=yes
add addresses=10.10.0.0/16 name={V} read-access=yes
/snmp
set contact=ti@cosechaunida.coop enabled=yes location="Planta Venado Tuerto"
/ip service
set telnet disabled=yes
""",
        "t32_snmp",
        True,
    ),
    (
        "logs/acopio-sync/2024-11-05.log",
        """\
2024-11-05 02:00:01.114 INFO  AcopioSync starting, interval=15m
2024-11-05 02:00:01.381 DEBUG POST https://cu-erp02:50000/b1s/v1/Login body={"CompanyDB":"SBO_COSECHAUNIDA","UserName":"intsync","Password":"{V}"}
2024-11-05 02:00:02.004 INFO  Login OK, SessionId=2f6c0a9e-41d8-11ef-8000-0050569c2a1b
2024-11-05 02:00:04.772 INFO  Sincronizados 118 remitos
""",
        "t32_pw",
        True,
    ),
    # ---- look-alikes ----
    (
        "logs/portal/auth-2024-11-06.log",
        """\
2024-11-06T13:02:11Z WARN  login_failed user=socio.20481 reason=bad_password request_id={V} ip=181.29.44.10
2024-11-06T13:02:19Z INFO  password_reset_requested user=socio.20481 request_id={V2}
2024-11-06T13:04:55Z INFO  login_ok user=socio.20481 mfa=totp request_id={V3}
""",
        "t32_uuid",
        False,
    ),
    (
        "docs/desarrollo/entorno-local.es.md",
        """\
# Entorno local

Levantá la base y el broker con `docker compose -f infra/docker/docker-compose.dev.yml up`.
Los ejemplos de esta guía usan hosts de documentación:

```
DATABASE_URL=postgres://surco:{V}@db.example.com:5432/surco
MQTT_URL=mqtts://riegonode-fw:{V2}@broker.riego.test:8883
```
""",
        "t32_doc_pw",
        False,
    ),
    (
        "docs/integraciones/webhooks.en.md",
        """\
# Verifying Surco webhooks

Each webhook is signed with our ed25519 key; verify it with this public key:

```
{V}
```

A signed sample delivery for your tests is in `samples/lote-actualizado.json`.
""",
        "t32_pubkey",
        False,
    ),
    (
        "services/liquidaciones/banco/README.md",
        """\
# Intercambio con el banco

La clave privada de firma está cifrada con passphrase (custodia: Tesorería). Copia de respaldo:

```
{V}
```
""",
        "t32_encrypted_pem",
        False,
    ),
    (
        "tickets/INFRA-1203.md",
        """\
**INFRA-1203** — Rotar contraseña de `svc_backup`

Se rotó la contraseña de la cuenta `CU\\svc_backup` el 2024-11-08.
Nueva contraseña: `{V}` — está en el Key Vault `kv-cu-prod`, secreto `svc-backup-pass`.
El script `Backup-Bascula.ps1` ya la toma de ahí.
""",
        "t32_redacted",
        False,
    ),
    (
        "portal/socios/frontend/src/i18n/pt-BR.json",
        """\
{
  "login": {
    "title": "Portal do Associado",
    "user": "CPF ou e-mail",
    "password": "Senha",
    "passwordHint": "{V}",
    "forgot": "Esqueci minha senha"
  }
}
""",
        "t32_i18n_pt",
        False,
    ),
    (
        "portal/socios/frontend/src/i18n/es-AR.json",
        """\
{
  "perfil": {
    "cambiarClave": "Cambiar contraseña",
    "claveActual": "Contraseña actual",
    "claveNueva": "Contraseña nueva",
    "error": "{V}"
  },
  "campos": { "passwordHelp": "{V2}" }
}
""",
        "t32_i18n_es",
        False,
    ),
    (
        "portal/socios/frontend/src/api/__tests__/client.test.ts",
        """\
import { createClient } from '../client';

describe('client', () => {
  it('sends the integration key header', async () => {
    const fetchMock = jest.fn().mockResolvedValue(new Response('{}'));
    const client = createClient({ apiKey: '{V}', fetch: fetchMock });
    await client.get('/lotes');
    expect(fetchMock.mock.calls[0][1].headers['X-Surco-Key']).toBe('{V}');
  });
});
""",
        "t32_fake_token",
        False,
    ),
    (
        "portal/socios/frontend/package-lock.json",
        """\
{
  "name": "portal-socios-frontend",
  "lockfileVersion": 3,
  "packages": {
    "node_modules/axios": {
      "version": "1.7.7",
      "resolved": "https://registry.npmjs.org/axios/-/axios-1.7.7.tgz",
      "integrity": "{V}"
    },
    "node_modules/dayjs": {
      "version": "1.11.13",
      "resolved": "https://registry.npmjs.org/dayjs/-/dayjs-1.11.13.tgz",
      "integrity": "{V2}"
    }
  }
}
""",
        "t32_sri",
        False,
    ),
    (
        "docs/releases/firmware-3.4.0.md",
        """\
# RiegoNode firmware 3.4.0

- Build: `{V}` (tag `fw-v3.4.0`)
- Merge commit: `{V2}`
- Fixes valve chatter on low battery; adds AU915 sub-band 2 default.
""",
        "t32_git_sha",
        False,
    ),
    (
        "runbooks/rotacion-claves.pt-BR.md",
        """\
# Rotação de credenciais (filial Brasil)

| Sistema        | Onde fica a senha                                       |
|----------------|---------------------------------------------------------|
| Odoo (API)     | `{V}` |
| SQL Server ERP | `{V2}` |

Depois de rotacionar, reiniciar o `erp-bridge` (`kubectl -n erp rollout restart deploy/erp-bridge`).
""",
        "t32_kv_ref",
        False,
    ),
    (
        "exports/slack/dev-portal/2024-09-30.json",
        """\
[
  {
    "type": "message",
    "user": "U05M1QX8RZP",
    "text": "alguien sabe qué hash usa el portal para las claves? veo esto en la tabla auth_user: `{V}`",
    "ts": "1727711420.114599"
  },
  {
    "type": "message",
    "user": "U03FJ8V1B2C",
    "text": "argon2 desde la migración de 2023, los viejos siguen en pbkdf2 hasta que el socio entra",
    "ts": "1727711502.330419"
  }
]
""",
        "t32_argon2",
        False,
    ),
    (
        "infra/ansible/roles/usuarios/vars/main.yml",
        """\
# usuarios locales de los gateways de planta (hash generado con mkpasswd -m sha-512)
usuarios_locales:
  - nombre: cuadmin
    password: "{V}"
    grupos: [sudo]
  - nombre: operador
    password: "{V2}"
    grupos: [dialout]
""",
        "t32_sha512crypt",
        False,
    ),
]

TEMPLATES += [
    (
        "pipelines/drones/scripts/Copiar-Ortos.ps1",
        """\
# Copia los ortomosaicos terminados del NAS al contenedor de Azure (lo usa Agronomía en QGIS)
$origen = '\\\\CU-NAS01\\vuelos\\procesados\\*'
$sas = 'sv=2022-11-02&ss=b&srt=co&sp=rwlc&se=2025-06-30T23:59:59Z&st=2024-07-01T00:00:00Z&spr=https&sig={V}'
$destino = "https://cudronesorto.blob.core.windows.net/ortos?$sas"

& 'C:\\Tools\\azcopy.exe' copy $origen $destino --recursive --overwrite=ifSourceNewer
""",
        "t32_sas_sig",
        True,
    ),
    (
        "pipelines/drones/scripts/avisar_pilotos.sh",
        """\
#!/usr/bin/env bash
# Avisa en el Discord de pilotos contratistas que el ortomosaico del vuelo está listo.
WEBHOOK="{V}"
VUELO="$1"
curl -s -H "Content-Type: application/json" \\
  -d "{\\"content\\": \\"Ortomosaico listo: ${VUELO} (ver https://odm.surco.app/vuelos/${VUELO})\\"}" \\
  "$WEBHOOK"
""",
        "t32_discord_webhook",
        True,
    ),
]
