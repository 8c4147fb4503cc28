"""Blind part ``heldout12``: a regional public-transport authority, the Rhenvale Regional
Transport Authority (RRTA: buses, trams and regional rail across the Rhenvale region, brand
"Rhenvale Mobiel"), and its contractors (Tessaline Systems for the ticketing back office,
Bramwick Embedded for fare-card and validator firmware, Nordhaven Apps for the passenger app,
Velocore Data for the data platform). Files are the ticketing back office in Java/Kotlin (Spring
Boot, Gradle, Maven settings) and .NET (appsettings, web.config, NuGet, C# and F# clients), the
fare-card and validator firmware tooling in C/C++ and Rust (SAM and DESFire key headers, signing
tools, Cargo and CMake config, PlatformIO/ESP-IDF settings), the passenger app in React Native,
Flutter/Dart and Swift (env files, key.properties, Fastlane, Info.plist, Firebase config,
payment and map SDK setup), real-time vehicle location (AVL) over MQTT and Kafka (Mosquitto
bridges, client.properties, JAAS, Go and Python bridges), GTFS and GTFS-RT feeds and the
open-data API, the data platform (Databricks notebooks, Snowflake, Airflow, dbt profiles, SQL),
Azure and on-prem infrastructure (Terraform, Bicep, Ansible, PowerCLI, Helm, Kubernetes),
SCADA and depot systems (traction power historian, depot yard management, OPC UA, SNMP), ITSM
(ServiceNow scripts, Jira automation), CI (Azure DevOps pipelines, GitLab CI and runners), plus
runbooks, wiki pages, Slack exports, onboarding docs and contractor handover notes in English,
Dutch, German and French. Written blind (without seeing the scanner, its rules or other parts'
templates).

Look-alikes sit in the same kinds of files under the same key names: references to environment
variables, Azure Key Vault, CI variables and secret scopes in every language and tool, template
expressions (Helm, Jinja/Ansible, dbt, Airflow), placeholders and redactions (including masked
CI logs), password hashes (bcrypt, argon2, ASP.NET Identity, sha512-crypt, Mosquitto ``$7$``,
PBKDF2), values encrypted at rest (Ansible Vault, SOPS, Jasypt, DPAPI, encrypted private keys),
public material (certificates, public and SSH keys, Mapbox ``pk.`` tokens, Stripe publishable
keys, Adyen client keys, OAuth client ids, signing-certificate fingerprints), identifiers shaped
like secrets (fare-card numbers, card UIDs, GTFS trip and vehicle ids, ServiceNow sys_ids,
Twilio account SIDs, Databricks cluster ids, Azure tenant and subscription ids, commit hashes,
image digests, feed checksums), UI and i18n text about passwords, documented example
credentials (the Azurite and Cosmos DB emulator keys, the jwt.io sample token, vendors' sample
webhooks and keys, MIFARE transport keys), credentials on documentation hosts (``example.com``,
``.test``, ``.invalid``) and test values that say they are fake.
"""

from __future__ import annotations

import base64
import hashlib
import json
import string
import struct
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
B32LOW = "abcdefghijklmnopqrstuvwxyz234567"
B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
PW_SYMBOLS = "!#%^*-_=+.@$"


def _t(path: str, kind: str, positive: bool, text: str) -> evalset.Template:
    """A template whose text starts on the line after the opening quotes."""
    return (path, text.lstrip("\n"), kind, positive)


class Heldout12Values(evalset.Values):
    """Value generators of the heldout12 part; every name starts with ``h12_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "tramline",
            "viaduct",
            "pantograph",
            "turnstile",
            "platform",
            "timetable",
            "overhead",
            "depot",
            "signal",
            "shuttle",
            "railcar",
            "junction",
            "ferry",
            "terminus",
        ]
        self.users = [
            "ticketing",
            "avl_ingest",
            "gtfs_pub",
            "fare_batch",
            "depot_sync",
            "scada_ro",
            "dwh_loader",
            "svc_validator",
            "opendata",
            "itsm_bridge",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def h12_util_b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        out = base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)
        text = out.decode()
        return text if pad else text.rstrip("=")

    def h12_util_crc_token(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def h12_util_armor(self, label: str, der: bytes, width: int = 64) -> str:
        body = base64.b64encode(der).decode()
        rows = [body[i : i + width] for i in range(0, len(body), width)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def h12_util_sshstr(self, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + data

    def h12_util_ed25519_pub(self) -> tuple[bytes, bytes]:
        pub = self.rng.randbytes(32)
        blob = self.h12_util_sshstr(b"ssh-ed25519") + self.h12_util_sshstr(pub)
        return pub, blob

    def h12_util_luhn(self, digits: str) -> str:
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch)
            if i % 2 == 0:
                d *= 2
                if d > 9:
                    d -= 9
            total += d
        return digits + str((10 - total % 10) % 10)

    def h12_util_guid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # ------------------------------------------------------------------ positives: passwords
    def h12_pw(self) -> str:
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
            return f"{word.capitalize()}-{other.capitalize()}-{self.s(3, DIGITS)}"
        if shape == 3:
            return "Rv" + self.s(12, ALNUM) + self.pick(list("!#%"))
        if shape == 4:
            return self.s(18, ALNUM)
        leet = word.replace("a", "@").replace("o", "0").replace("e", "3")
        return leet[0].upper() + leet[1:] + "#" + self.s(4, DIGITS)

    def h12_weak_pw(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(
                [
                    "Welkom01",
                    "Password1!",
                    "Tram2024",
                    "rhenvale1",
                    "admin123",
                    "Bus12345",
                    "Zomer2023!",
                    "validator1",
                    "Depot123",
                ]
            )
        if shape == 1:
            return "Rhenvale" + str(self.rng.randrange(2016, 2026)) + self.pick(["", "!", "#"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2024", "!"])
        return self.pick(["Lente", "Zomer", "Herfst", "Winter"]) + str(
            self.rng.randrange(2019, 2026)
        )

    def h12_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(4, DIGITS)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(13, 22), ALNUM + "-_.~")

    def h12_mqtt_pw(self) -> str:
        if self.rng.randrange(2):
            return self.s(28, ALNUM)
        return "-".join(self.pick(self.words) for _ in range(3)) + self.s(3, DIGITS)

    def h12_basic_b64(self) -> str:
        user = self.pick([*self.users, "svc-ado", "rrta-deploy", "itsm.integration"])
        return base64.b64encode(f"{user}:{self.h12_pw()}".encode()).decode()

    def h12_github(self) -> str:
        return self.h12_util_crc_token(self.pick(["ghp", "ghp", "gho", "ghs"]))

    def h12_github_fine(self) -> str:
        return f"github_pat_11{self.s(20, UPNUM)}_{self.s(59, ALNUM)}"

    def h12_npm(self) -> str:
        return self.h12_util_crc_token("npm")

    def h12_gitlab(self) -> str:
        return "glpat-" + self.s(20, URLSAFE)

    def h12_gitlab_runner(self) -> str:
        return "glrt-" + self.s(20, URLSAFE)

    def h12_gitlab_deploy(self) -> str:
        return "gldt-" + self.s(20, URLSAFE)

    def h12_ado_pat(self) -> str:
        return self.s(52, B32LOW)

    def h12_nuget(self) -> str:
        return "oy2" + self.s(43, LOWNUM)

    def h12_crates(self) -> str:
        return "cio" + self.s(32, ALNUM)

    def h12_pypi(self) -> str:
        return "pypi-AgEIcHlwaS5vcmc" + self.s(self.rng.randrange(70, 140), URLSAFE)

    def h12_acr_pw(self) -> str:
        return self.s(52, ALNUM + "+/")

    # ------------------------------------------------------------------ positives: Azure, cloud
    def h12_azure_client_secret(self) -> str:
        return self.s(3, ALNUM + "_~.") + self.s(1, DIGITS) + "Q~" + self.s(34, ALNUM + "_~.-")

    def h12_azure_storage_key(self) -> str:
        return self.h12_util_b64(64)

    def h12_sas_key(self) -> str:
        return self.h12_util_b64(32)

    def h12_sas_sig(self) -> str:
        from urllib.parse import quote

        return quote(self.h12_util_b64(32), safe="")

    def h12_vault_token(self) -> str:
        return "hvs." + self.s(self.rng.choice([24, 90]), URLSAFE)

    def h12_approle_secret(self) -> str:
        return self.h12_util_guid()

    # ------------------------------------------------------------------ positives: SaaS tokens
    def h12_slack_bot(self) -> str:
        return f"xoxb-{self.s(11, DIGITS)}-{self.s(13, DIGITS)}-{self.s(24, ALNUM)}"

    def h12_slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}"
            f"/B{self.s(10, UPNUM)}/{self.s(24, ALNUM)}"
        )

    def h12_teams_webhook(self) -> str:
        ids = [self.h12_util_guid() for _ in range(3)]
        return (
            f"https://rhenvaleov.webhook.office.com/webhookb2/{ids[0]}@{ids[1]}"
            f"/IncomingWebhook/{self.s(32, HEX)}/{ids[2]}"
        )

    def h12_databricks(self) -> str:
        return "dapi" + self.s(32, HEX) + self.pick(["", "", "-2", "-3"])

    def h12_dbt_token(self) -> str:
        return "dbtc_" + self.s(48, URLSAFE)

    def h12_confluent_secret(self) -> str:
        return self.s(64, ALNUM + "+/")

    def h12_fernet(self) -> str:
        return self.h12_util_b64(32, urlsafe=True)

    def h12_hex32(self) -> str:
        return self.s(32, HEX)

    def h12_hex64(self) -> str:
        return self.s(64, HEX)

    def h12_jwt_secret(self) -> str:
        if self.rng.randrange(2):
            return self.s(48, ALNUM + "-_")
        return self.h12_util_b64(48)

    def h12_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

        iat = 1_700_000_000 + self.rng.randrange(3 * 10**7)
        head = part({"alg": "HS256", "typ": "JWT"})
        body = part(
            {
                "sub": self.pick(self.users),
                "iss": "https://auth.rrta.internal",
                "aud": self.pick(["ticketing-api", "avl-gateway", "opendata"]),
                "iat": iat,
                "exp": iat + 10 * 365 * 86400,
            }
        )
        return f"{head}.{body}.{self.h12_util_b64(32, urlsafe=True, pad=False)}"

    def h12_stripe_sk(self) -> str:
        return self.pick(["sk_live_", "rk_live_"]) + self.s(self.pick([24, 99]), ALNUM)

    def h12_stripe_whsec(self) -> str:
        return "whsec_" + self.s(32, ALNUM)

    def h12_adyen_key(self) -> str:
        tail = self.s(16, ALNUM + "[]()-+")
        return f"AQE{self.s(5, ALNUM)}{self.h12_util_b64(66)}-{self.h12_util_b64(32)}-{tail}"

    def h12_twilio_token(self) -> str:
        return self.s(32, HEX)

    def h12_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def h12_google_api(self) -> str:
        return "AIza" + self.s(35, URLSAFE)

    def h12_fcm_server_key(self) -> str:
        return f"AAAA{self.s(7, URLSAFE)}:APA91b{self.s(134, URLSAFE)}"

    def h12_mapbox_sk(self) -> str:
        payload = json.dumps(
            {"u": "rrta-maps", "a": "cl" + self.s(23, LOWNUM)}, separators=(",", ":")
        )
        body = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"sk.{body}.{self.s(22, URLSAFE)}"

    def h12_okta(self) -> str:
        return "00" + self.s(40, URLSAFE)

    def h12_atlassian(self) -> str:
        body = "ATATT3xFfGF0" + self.s(171, URLSAFE)
        return f"{body}={zlib.crc32(body.encode()):08X}"

    def h12_sentry(self) -> str:
        return "sntryu_" + self.s(64, HEX)

    def h12_splunk_hec(self) -> str:
        return self.h12_util_guid()

    def h12_openai(self) -> str:
        return f"sk-proj-{self.s(58, URLSAFE)}T3BlbkFJ{self.s(58, URLSAFE)}"

    def h12_servicenow_secret(self) -> str:
        return self.s(32, ALNUM + "!#$%()*+,-.:;<=>?@[]^_{|}~")

    def h12_age_secret(self) -> str:
        return "AGE-SECRET-KEY-1" + self.s(58, BECH32).upper()

    # ------------------------------------------------------------------ positives: key material
    def h12_desfire_key(self) -> str:
        return ", ".join(f"0x{b:02X}" for b in self.rng.randbytes(16))

    def h12_aes_hex(self) -> str:
        return self.s(32, HEXU)

    def h12_rsa_pem(self) -> str:
        der = bytes.fromhex("308204a40201000282010100") + self.rng.randbytes(1192 - 12)
        return self.h12_util_armor("RSA PRIVATE KEY", der)

    def h12_ec_pem(self) -> str:
        der = (
            bytes.fromhex("30770201010420")
            + self.rng.randbytes(32)
            + bytes.fromhex("a00a06082a8648ce3d030107a14403420004")
            + self.rng.randbytes(64)
        )
        return self.h12_util_armor("EC PRIVATE KEY", der)

    def h12_p8_key(self) -> str:
        der = (
            bytes.fromhex(
                "308193020100301306072a8648ce3d020106082a8648ce3d030107047930770201010420"
            )
            + self.rng.randbytes(32)
            + bytes.fromhex("a00a06082a8648ce3d030107a144034200")
            + b"\x04"
            + self.rng.randbytes(64)
        )
        return self.h12_util_armor("PRIVATE KEY", der)

    def h12_openssh_key(self) -> str:
        pub, blob = self.h12_util_ed25519_pub()
        check = self.rng.randbytes(4)
        comment = self.pick(["deploy@rrta-jump01", "ansible@depot-ctl", "fw-sign@bramwick"])
        priv = (
            check
            + check
            + self.h12_util_sshstr(b"ssh-ed25519")
            + self.h12_util_sshstr(pub)
            + self.h12_util_sshstr(self.rng.randbytes(32) + pub)
            + self.h12_util_sshstr(comment.encode())
        )
        pad = 1
        while len(priv) % 8:
            priv += bytes([pad])
            pad += 1
        raw = (
            b"openssh-key-v1\x00"
            + self.h12_util_sshstr(b"none")
            + self.h12_util_sshstr(b"none")
            + self.h12_util_sshstr(b"")
            + struct.pack(">I", 1)
            + self.h12_util_sshstr(blob)
            + self.h12_util_sshstr(priv)
        )
        return self.h12_util_armor("OPENSSH PRIVATE KEY", raw, width=70)

    def h12_ppk(self) -> str:
        _pub, blob = self.h12_util_ed25519_pub()
        pub_b64 = base64.b64encode(blob).decode()
        priv_b64 = base64.b64encode(self.h12_util_sshstr(self.rng.randbytes(32))).decode()
        return (
            "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n"
            f"Comment: scada-jump-{self.s(4, DIGITS)}\nPublic-Lines: 2\n"
            f"{pub_b64[:64]}\n{pub_b64[64:]}\nPrivate-Lines: 1\n{priv_b64}\n"
            f"Private-MAC: {self.s(64, HEX)}"
        )

    # ------------------------------------------------------------------ negatives: references
    def h12_ref_jvm(self) -> str:
        return self.pick(
            [
                "${TICKETING_DB_PASSWORD}",
                "${vault.ticketing.db-password}",
                "${TICKETING_DB_PASSWORD:}",
                'System.getenv("TICKETING_DB_PASSWORD")',
                "${env.NEXUS_DEPLOY_PASSWORD}",
                "#{environment['KAFKA_SASL_PASSWORD']}",
                "${file:/opt/avl/secrets.properties:sasl.password}",
            ]
        )

    def h12_ref_kotlin(self) -> str:
        return self.pick(
            [
                'System.getenv("FARE_API_TOKEN") ?: error("FARE_API_TOKEN not set")',
                'providers.gradleProperty("nexusPassword").get()',
                'findProperty("rrtaNexusPassword") as String?',
                'requireNotNull(System.getenv("AVL_MQTT_PASSWORD"))',
                "BuildConfig.MAPS_TOKEN",
            ]
        )

    def h12_ref_dotnet(self) -> str:
        return self.pick(
            [
                'Environment.GetEnvironmentVariable("FARE_DB_PASSWORD")',
                'builder.Configuration["Ticketing:ApiKey"]',
                'configuration.GetConnectionString("FareDb")',
                '(await secretClient.GetSecretAsync("fare-db-password")).Value.Value',
                "Options.Value.ClientSecret",
            ]
        )

    def h12_ref_ci(self) -> str:
        return self.pick(
            [
                "$(ArtifactsPat)",
                "$(System.AccessToken)",
                "$CI_JOB_TOKEN",
                "${NEXUS_PASSWORD}",
                "$RRTA_REGISTRY_PASSWORD",
                "$(sonarToken)",
                "${{ secrets.APPSTORE_API_KEY }}",
            ]
        )

    def h12_ref_tmpl(self) -> str:
        return self.pick(
            [
                "{{ .Values.mqtt.password }}",
                "{{ vault_vcenter_password }}",
                "{{ lookup('env', 'VSPHERE_PASSWORD') }}",
                "{{ env_var('DBT_SNOWFLAKE_PASSWORD') }}",
                '{{ required "db password" .Values.db.password }}',
                "{{ lookup('community.hashi_vault.hashi_vault', 'secret=rrta/data/scada:password') }}",
            ]
        )

    def h12_ref_native(self) -> str:
        return self.pick(
            [
                'env!("RRTA_SIGNING_KEY_PATH")',
                'std::env::var("VALIDATOR_API_TOKEN")?',
                'getenv("SAM_UNLOCK_PIN")',
                'ProcessInfo.processInfo.environment["RRTA_API_KEY"] ?? ""',
                "String.fromEnvironment('MAPS_TOKEN')",
                "Config.API_TOKEN",
            ]
        )

    def h12_ref_py(self) -> str:
        return self.pick(
            [
                'os.environ["SNOWFLAKE_PASSWORD"]',
                'os.getenv("SERVICENOW_PASSWORD")',
                'dbutils.secrets.get(scope="rrta-kv", key="snowflake-password")',
                'Variable.get("opendata_api_key")',
                'BaseHook.get_connection("snowflake_dwh").password',
                'keyring.get_password("servicenow", "itsm.integration")',
            ]
        )

    def h12_ref_js(self) -> str:
        return self.pick(
            [
                "process.env.RRTA_API_KEY",
                "Config.RRTA_API_KEY",
                "process.env.EXPO_PUBLIC_PLANNER_URL",
                "gs.getProperty('x_rrta.avl.api_token')",
                "await SecureStore.getItemAsync('refreshToken')",
            ]
        )

    def h12_ref_keyvault(self) -> str:
        return self.pick(
            [
                "@Microsoft.KeyVault(SecretUri=https://kv-rrta-prod.vault.azure.net/secrets/fare-db-password/)",
                "@Microsoft.KeyVault(VaultName=kv-rrta-prod;SecretName=servicebus-conn)",
                "@Microsoft.KeyVault(SecretUri=https://kv-rrta-prod.vault.azure.net/secrets/fare-gateway-db/3c1d9a0b7e2f4c6d8a1b3c5d7e9f0a2b)",
            ]
        )

    def h12_ref_tf(self) -> str:
        return self.pick(
            [
                "data.azurerm_key_vault_secret.sql_admin.value",
                "var.sql_admin_password",
                "random_password.sql_admin.result",
                "module.secrets.sql_admin_password",
            ]
        )

    def h12_ref_shell(self) -> str:
        return self.pick(
            [
                '"$VCENTER_PASSWORD"',
                '"$(az keyvault secret show --vault-name kv-rrta-prod -n sql-admin --query value -o tsv)"',
                '"${SNOW_PASSWORD:?set SNOW_PASSWORD}"',
                '"$(cat /run/secrets/mqtt_password)"',
                '"$(pass show rrta/scada/historian)"',
            ]
        )

    # ------------------------------------------------------------------ negatives: placeholders
    def h12_placeholder(self) -> str:
        return self.pick(
            [
                "<your-password>",
                "CHANGE_ME",
                "changeme",
                "<ADO_PAT>",
                "REPLACE_WITH_YOUR_KEY",
                "xxxxxxxxxxxxxxxxxxxxxxxx",
                "<client-secret>",
                "YOUR_API_TOKEN_HERE",
                "<wachtwoord>",
                "TODO",
                "dapi<token>",
                "<vul-hier-in>",
                "PUT_TOKEN_HERE",
            ]
        )

    def h12_redacted(self) -> str:
        return self.pick(
            ["********", "***", "[MASKED]", "<redacted>", "REDACTED", "••••••••", "[FILTERED]"]
        )

    # ------------------------------------------------------------------ negatives: hashes
    def h12_bcrypt(self) -> str:
        return f"$2{self.pick(['a', 'b', 'y'])}$12$" + self.s(53, "./" + ALNUM)

    def h12_argon2(self) -> str:
        salt = self.h12_util_b64(16, pad=False)
        digest = self.h12_util_b64(32, pad=False)
        return f"$argon2id$v=19$m=19456,t=2,p=1${salt}${digest}"

    def h12_aspnet_hash(self) -> str:
        raw = b"\x01" + struct.pack(">III", 1, 100_000, 16)
        return base64.b64encode(raw + self.rng.randbytes(48)).decode()

    def h12_sha512crypt(self) -> str:
        return f"$6${self.s(16, './' + ALNUM)}${self.s(86, './' + ALNUM)}"

    def h12_mosquitto_hash(self) -> str:
        return f"$7$101${self.h12_util_b64(12)}${self.h12_util_b64(64)}"

    def h12_pbkdf2(self) -> str:
        return f"pbkdf2:sha256:600000${self.s(16, ALNUM)}${self.s(64, HEX)}"

    def h12_sha256(self) -> str:
        return hashlib.sha256(self.rng.randbytes(24)).hexdigest()

    def h12_sha1(self) -> str:
        return hashlib.sha1(self.rng.randbytes(24)).hexdigest()

    def h12_image_digest(self) -> str:
        return "sha256:" + self.h12_sha256()

    def h12_sri(self) -> str:
        return "sha512-" + self.h12_util_b64(64)

    # ------------------------------------------------------------------ negatives: encrypted
    def h12_ansible_vault(self) -> str:
        body = self.s(80 * 5, HEX)
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def h12_sops(self) -> str:
        data = self.h12_util_b64(self.rng.randrange(12, 40))
        return (
            f"ENC[AES256_GCM,data:{data},iv:{self.h12_util_b64(32)},"
            f"tag:{self.h12_util_b64(16)},type:str]"
        )

    def h12_jasypt(self) -> str:
        return f"ENC({self.h12_util_b64(self.pick([32, 48]))})"

    def h12_dpapi(self) -> str:
        head = bytes.fromhex("01000000d08c9ddf0115d1118c7a00c04fc297eb01000000")
        return base64.b64encode(head + self.rng.randbytes(150)).decode()

    def h12_enc_pem(self) -> str:
        head = bytes.fromhex(
            "3082050c305706092a864886f70d01050d304a302906092a864886f70d01050c301c0408"
        )
        return self.h12_util_armor("ENCRYPTED PRIVATE KEY", head + self.rng.randbytes(8 + 1250))

    # ------------------------------------------------------------------ negatives: public material
    def h12_cert(self) -> str:
        return self.h12_util_armor("CERTIFICATE", bytes.fromhex("3082") + self.rng.randbytes(780))

    def h12_public_pem(self) -> str:
        der = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200") + b"\x04"
        return self.h12_util_armor("PUBLIC KEY", der + self.rng.randbytes(64))

    def h12_ssh_pub(self) -> str:
        _pub, blob = self.h12_util_ed25519_pub()
        who = self.pick(["deploy@rrta-jump01", "j.vandenberg@rrta", "ci@gitlab-runner-03"])
        return f"ssh-ed25519 {base64.b64encode(blob).decode()} {who}"

    def h12_mapbox_pk(self) -> str:
        payload = json.dumps(
            {"u": "rrta-maps", "a": "cl" + self.s(23, LOWNUM)}, separators=(",", ":")
        )
        body = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"pk.{body}.{self.s(22, URLSAFE)}"

    def h12_stripe_pk(self) -> str:
        return "pk_live_" + self.s(99, ALNUM)

    def h12_adyen_client_key(self) -> str:
        return self.pick(["live_", "test_"]) + self.s(32, UPNUM)

    def h12_oauth_client_id(self) -> str:
        digits = self.s(12, DIGITS)
        return f"{digits}-{self.s(32, LOWNUM)}.apps.googleusercontent.com"

    def h12_cert_fpr(self) -> str:
        return ":".join(f"{b:02X}" for b in self.rng.randbytes(32))

    # ------------------------------------------------------------------ negatives: identifiers
    def h12_uuid(self) -> str:
        return self.h12_util_guid()

    def h12_sys_id(self) -> str:
        return self.s(32, HEX)

    def h12_twilio_sid(self) -> str:
        return self.pick(["AC", "MG", "PN"]) + self.s(32, HEX)

    def h12_fare_card(self) -> str:
        return self.h12_util_luhn("6391" + self.s(14, DIGITS))

    def h12_card_uid(self) -> str:
        return "04" + self.s(12, HEXU)

    def h12_trip_id(self) -> str:
        return self.pick(
            [
                f"RV:{self.s(8, DIGITS)}:{self.s(3, DIGITS)}",
                f"{self.s(6, DIGITS)}_{self.s(4, DIGITS)}_WD",
                self.s(24, HEX),
            ]
        )

    def h12_cluster_id(self) -> str:
        return f"{self.s(4, DIGITS)}-{self.s(6, DIGITS)}-{self.s(8, LOWNUM)}"

    def h12_avl_msg_id(self) -> str:
        return self.h12_util_b64(24, urlsafe=True, pad=False)

    # ------------------------------------------------------------------ negatives: text, docs
    def h12_i18n(self) -> str:
        return self.pick(
            [
                "Wachtwoord vergeten?",
                "Je wachtwoord moet minstens 10 tekens bevatten",
                "Passwort vergessen?",
                "Das Passwort ist abgelaufen. Bitte ein neues Passwort wählen.",
                "Mot de passe incorrect",
                "Saisissez le code de votre carte OV",
                "Ange ditt lösenord",
                "Hasło jest za krótkie",
                "Uw sessie is verlopen, log opnieuw in",
                "Token ungültig – bitte erneut anmelden",
            ]
        )

    def h12_doc_storage_key(self) -> str:
        return self.pick(
            [
                "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
                "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==",
            ]
        )

    def h12_doc_jwt(self) -> str:
        return (
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4g"
            "RG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
        )

    def h12_doc_webhook(self) -> str:
        return self.pick(
            [
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "https://hooks.slack.com/services/TXXXXXXXX/BXXXXXXXX/XXXXXXXXXXXXXXXXXXXXXXXX",
                "https://example.webhook.office.com/webhookb2/00000000-0000-0000-0000-000000000000@00000000-0000-0000-0000-000000000000/IncomingWebhook/00000000000000000000000000000000/00000000-0000-0000-0000-000000000000",
            ]
        )

    def h12_doc_aws(self) -> str:
        return self.pick(
            ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"]
        )

    def h12_doc_stripe(self) -> str:
        return self.pick(["sk_test_4eC39HqLyjWDarjtT1zdp7dc", "sk_test_BQokikJOvBiI2HlWgH4olfQ2"])

    def h12_mifare_default(self) -> str:
        return self.pick(["FFFFFFFFFFFF", "A0A1A2A3A4A5", "D3F7D3F7D3F7", "000000000000"])

    def h12_desfire_default(self) -> str:
        return ", ".join(["0x00"] * 16)

    def h12_doc_host_pw(self) -> str:
        return self.pick(self.words) + self.s(3, DIGITS)

    def h12_fake_marked(self) -> str:
        return self.pick(
            [
                "fake-token-for-unit-tests",
                "not-a-real-secret",
                "dummy_password_do_not_use",
                "test-only-not-a-key",
                "FAKE_DATABRICKS_TOKEN",
                "unit-test-fake-sas-key",
                "nep-wachtwoord-voor-tests",
            ]
        )

    def h12_form_field(self) -> str:
        return self.pick(["password", "wachtwoord", "new_password", "pin", "client_secret"])

    def h12_nist_vector(self) -> str:
        return self.pick(
            [
                "2b7e151628aed2a6abf7158809cf4f3c",
                "000102030405060708090a0b0c0d0e0f",
                "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
            ]
        )

    def h12_doc_mqtt(self) -> str:
        return self.pick(["readwrite", "readonly", "writeonly"])

    def h12_kv_secret_name(self) -> str:
        return self.pick(
            [
                "vcenter-admin-password",
                "sql-fare-admin",
                "servicebus-ticketing-conn",
                "scada-historian-ro",
                "snowflake-dwh-loader",
                "avl-mqtt-bridge",
            ]
        )

    def h12_age_public(self) -> str:
        return "age1" + self.s(58, BECH32)

    def h12_tf_hash(self) -> str:
        return "h1:" + self.h12_util_b64(32)

    def h12_rsa_pub_b64(self) -> str:
        der = bytes.fromhex("30820122300d06092a864886f70d01010105000382010f003082010a0282010100")
        return base64.b64encode(
            der + self.rng.randbytes(256) + bytes.fromhex("0203010001")
        ).decode()

    def h12_ref_java(self) -> str:
        return self.pick(
            [
                'System.getenv("SETTLEMENT_SFTP_PASSWORD")',
                'props.getProperty("sftp.password")',
                "settings.getSftp().getPassword()",
                'secretClient.getSecret("settlement-sftp").getValue()',
            ]
        )

    def h12_ref_go(self) -> str:
        return self.pick(
            [
                'os.Getenv("AVL_MQTT_PASSWORD")',
                "cfg.MQTT.Password",
                'viper.GetString("mqtt.password")',
                'mustEnv("AVL_MQTT_PASSWORD")',
            ]
        )

    def h12_ref_ps(self) -> str:
        return self.pick(
            [
                "$env:VCENTER_PASSWORD",
                "(Get-Secret -Name VCenterAdmin -AsPlainText)",
                "$cred.GetNetworkCredential().Password",
                "(Get-AzKeyVaultSecret -VaultName kv-rrta-prod -Name vcenter-admin -AsPlainText)",
            ]
        )

    def h12_ref_kafka(self) -> str:
        return self.pick(
            [
                "${file:/opt/kafka/secrets/dwh.properties:password}",
                "${env:DWH_SINK_PASSWORD}",
                "${secrets:avl-connect/dwh-sink:password}",
                "${directory:/mnt/secrets:dwh-password}",
            ]
        )

    def h12_ref_dbt(self) -> str:
        return self.pick(
            [
                "{{ env_var('DBT_SNOWFLAKE_PASSWORD') }}",
                "{{ env_var('DBT_ENV_SECRET_SNOWFLAKE_PW') }}",
                "{{ env_var('SNOWFLAKE_PASSWORD', '') }}",
            ]
        )

    def h12_sonar(self) -> str:
        return self.pick(["squ_", "sqp_", "sqa_"]) + self.s(40, HEX)

    def h12_b64_pat(self) -> str:
        return base64.b64encode(self.h12_ado_pat().encode()).decode()

    def h12_gcp_sa_key(self) -> str:
        der = bytes.fromhex(
            "308204bd020100300d06092a864886f70d0101010500048204a7308204a30201000282010100"
        )
        pem = self.h12_util_armor("PRIVATE KEY", der + self.rng.randbytes(1217 - len(der)))
        return pem.replace("\n", "\\n") + "\\n"

    def h12_pkcs8_rsa(self) -> str:
        der = bytes.fromhex(
            "308204bd020100300d06092a864886f70d0101010500048204a7308204a30201000282010100"
        )
        return self.h12_util_armor("PRIVATE KEY", der + self.rng.randbytes(1217 - len(der)))


VALUES = Heldout12Values

TEMPLATES: list[evalset.Template] = [
    # ================================================================ ticketing back office (JVM)
    _t(
        "ticketing/fare-service/src/main/resources/application-prod.yml",
        "h12_pw",
        True,
        """
spring:
  application:
    name: fare-service
  datasource:
    url: jdbc:sqlserver://sql-rrta-fare.database.windows.net:1433;database=fare;encrypt=true
    username: fare_app
    password: {V}
    hikari:
      maximum-pool-size: 20
      connection-timeout: 15000
  jpa:
    open-in-view: false
    properties:
      hibernate.jdbc.batch_size: 50
management:
  endpoints:
    web:
      exposure:
        include: health,info,prometheus
rrta:
  fare:
    zone-model: concentric-v3
    price-table-cache-ttl: 10m
""",
    ),
    _t(
        "ticketing/fare-service/src/main/resources/application.yml",
        "h12_ref_jvm",
        False,
        """
spring:
  application:
    name: fare-service
  profiles:
    active: ${SPRING_PROFILES_ACTIVE:local}
  datasource:
    url: ${TICKETING_DB_URL}
    username: ${TICKETING_DB_USER:fare_app}
    password: {V}
  flyway:
    enabled: true
    locations: classpath:db/migration
server:
  port: 8080
  shutdown: graceful
rrta:
  fare:
    zone-model: concentric-v3
    # secrets come from Key Vault through the CSI driver, never from this file
""",
    ),
    _t(
        "ticketing/settlement/src/main/resources/application-acc.properties",
        "h12_confluent_secret",
        True,
        """
# Settlement service - acceptance (Tessaline Systems)
spring.application.name=settlement
spring.kafka.bootstrap-servers=pkc-3w22w.westeurope.azure.confluent.cloud:9092
spring.kafka.properties.security.protocol=SASL_SSL
spring.kafka.properties.sasl.mechanism=PLAIN
spring.kafka.properties.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="QZ7TWBRLX4MNA2CE" password="{V}";
spring.kafka.consumer.group-id=settlement-acc
spring.kafka.consumer.auto-offset-reset=earliest
spring.kafka.producer.acks=all
settlement.topics.taps=fare.taps.v2
settlement.topics.journeys=fare.journeys.v1
settlement.batch.cron=0 15 2 * * *
logging.level.org.apache.kafka=WARN
""",
    ),
    _t(
        "ticketing/settlement/src/main/resources/application-prod.properties",
        "h12_jasypt",
        False,
        """
# Settlement service - production
# Values in ENC(...) are decrypted at start-up by jasypt-spring-boot;
# the master password is injected as JASYPT_ENCRYPTOR_PASSWORD from Key Vault.
spring.application.name=settlement
spring.datasource.url=jdbc:sqlserver://sql-rrta-fare.database.windows.net:1433;database=settlement
spring.datasource.username=settlement_app
spring.datasource.password={V}
jasypt.encryptor.algorithm=PBEWITHHMACSHA512ANDAES_256
jasypt.encryptor.iv-generator-classname=org.jasypt.iv.RandomIvGenerator
settlement.bank.sftp.host=sftp.clearing-partner.eu
settlement.bank.sftp.user=rrta_settle
settlement.batch.cron=0 15 2 * * *
""",
    ),
    _t(
        "ticketing/build.gradle.kts",
        "h12_ado_pat",
        True,
        """
plugins {
    id("org.springframework.boot") version "3.2.5" apply false
    id("io.spring.dependency-management") version "1.1.4" apply false
    kotlin("jvm") version "1.9.23" apply false
}

allprojects {
    group = "eu.rrta.ticketing"
    repositories {
        mavenCentral()
        maven {
            name = "rrtaArtifacts"
            url = uri("https://pkgs.dev.azure.com/rrta/_packaging/ticketing/maven/v1")
            credentials {
                username = "rrta"
                password = "{V}"
            }
        }
    }
}
""",
    ),
    _t(
        "ticketing/card-registry/build.gradle.kts",
        "h12_ref_kotlin",
        False,
        """
plugins {
    kotlin("jvm")
    id("org.springframework.boot")
    `maven-publish`
}

publishing {
    repositories {
        maven {
            name = "rrtaNexus"
            url = uri("https://nexus.rrta.local/repository/maven-releases/")
            credentials {
                username = "ci-publisher"
                password = {V}
            }
        }
    }
}

dependencies {
    implementation(project(":fare-model"))
    implementation("org.springframework.boot:spring-boot-starter-web")
}
""",
    ),
    _t(
        "ticketing/card-registry/src/main/kotlin/eu/rrta/cards/VendorCardApiClient.kt",
        "h12_hex64",
        True,
        """
package eu.rrta.cards

import org.springframework.http.HttpHeaders
import org.springframework.stereotype.Component
import org.springframework.web.reactive.function.client.WebClient

// Client for the card-management platform of the fare-card supplier.
@Component
class VendorCardApiClient(builder: WebClient.Builder) {
    private val client = builder
        .baseUrl("https://api.cardhub.tessaline.eu/v2")
        .defaultHeader("X-Api-Key", API_KEY)
        .defaultHeader(HttpHeaders.ACCEPT, "application/json")
        .build()

    fun blockCard(cardId: String) = client.post()
        .uri("/cards/{id}/block", cardId)
        .retrieve()
        .toBodilessEntity()

    companion object {
        private const val API_KEY = "{V}"
    }
}
""",
    ),
    _t(
        "ticketing/card-registry/src/test/kotlin/eu/rrta/cards/VendorCardApiClientTest.kt",
        "h12_fake_marked",
        False,
        """
package eu.rrta.cards

import okhttp3.mockwebserver.MockResponse
import okhttp3.mockwebserver.MockWebServer
import org.junit.jupiter.api.Test
import kotlin.test.assertEquals

class VendorCardApiClientTest {
    private val server = MockWebServer()

    @Test
    fun `sends the api key header`() {
        val apiKey = "{V}"
        server.enqueue(MockResponse().setResponseCode(204))
        val client = testClient(server.url("/").toString(), apiKey)
        client.blockCard("RV-000123")
        val request = server.takeRequest()
        assertEquals(apiKey, request.getHeader("X-Api-Key"))
    }
}
""",
    ),
    _t(
        "ticketing/settlement/src/main/java/eu/rrta/settlement/ClearingSftpUploader.java",
        "h12_pw",
        True,
        """
package eu.rrta.settlement;

import com.jcraft.jsch.ChannelSftp;
import com.jcraft.jsch.JSch;
import com.jcraft.jsch.Session;
import java.nio.file.Path;

public final class ClearingSftpUploader {
    private static final String HOST = "sftp.clearing-partner.eu";
    private static final String USER = "rrta_settle";

    public void upload(Path settlementFile) throws Exception {
        JSch jsch = new JSch();
        jsch.setKnownHosts("/etc/rrta/known_hosts");
        Session session = jsch.getSession(USER, HOST, 22);
        session.setPassword("{V}");
        session.connect(15_000);
        ChannelSftp sftp = (ChannelSftp) session.openChannel("sftp");
        sftp.connect();
        sftp.put(settlementFile.toString(), "/inbound/" + settlementFile.getFileName());
        sftp.disconnect();
        session.disconnect();
    }
}
""",
    ),
    _t(
        "ticketing/settlement/src/main/java/eu/rrta/settlement/ClearingSftpClient.java",
        "h12_ref_java",
        False,
        """
package eu.rrta.settlement;

import com.jcraft.jsch.JSch;
import com.jcraft.jsch.Session;

final class ClearingSftpClient {
    private final SettlementSettings settings;
    private final SecretSource secretClient;

    ClearingSftpClient(SettlementSettings settings, SecretSource secretClient) {
        this.settings = settings;
        this.secretClient = secretClient;
    }

    Session open() throws Exception {
        var props = settings.asProperties();
        Session session = new JSch().getSession("rrta_settle", settings.host(), 22);
        session.setPassword({V});
        session.connect(15_000);
        return session;
    }
}
""",
    ),
    _t(
        "ticketing/fare-service/docker-compose.test.yml",
        "h12_weak_pw",
        True,
        """
# Integration-test stack for fare-service (run with: docker compose -f docker-compose.test.yml up)
services:
  sqlserver:
    image: mcr.microsoft.com/mssql/server:2022-latest
    environment:
      ACCEPT_EULA: "Y"
      MSSQL_SA_PASSWORD: "{V}"
    ports:
      - "14330:1433"
  fare-service:
    build: .
    environment:
      SPRING_PROFILES_ACTIVE: it
      TICKETING_DB_URL: jdbc:sqlserver://sqlserver:1433;database=fare;trustServerCertificate=true
      TICKETING_DB_USER: sa
      TICKETING_DB_PASSWORD: "{V}"
    depends_on:
      - sqlserver
""",
    ),
    _t(
        "ticketing/fare-service/src/main/resources/db/migration/V0412__report_login.sql",
        "h12_pw",
        True,
        """
-- V0412: read-only login for the nightly fare revenue report (Power BI gateway)
IF NOT EXISTS (SELECT 1 FROM sys.sql_logins WHERE name = 'fare_report')
BEGIN
    CREATE LOGIN fare_report WITH PASSWORD = '{V}', CHECK_POLICY = ON;
END
GO

CREATE USER fare_report FOR LOGIN fare_report;
GO

ALTER ROLE db_datareader ADD MEMBER fare_report;
DENY SELECT ON SCHEMA::audit TO fare_report;
GO
""",
    ),
    _t(
        "ticketing/backoffice-portal/src/main/resources/db/seed/R__portal_users.sql",
        "h12_bcrypt",
        False,
        """
-- Repeatable seed: back-office portal operator accounts (passwords are bcrypt hashes;
-- operators set their own password on first login through the reset flow).
MERGE INTO portal_user AS t
USING (VALUES
    ('helpdesk.lead', 'Helpdesk lead', '{V}', 'ROLE_HELPDESK'),
    ('fare.analyst',  'Fare analyst',  '{V2}', 'ROLE_ANALYST'),
    ('ops.viewer',    'Ops viewer',    '{V3}', 'ROLE_VIEWER')
) AS s (username, display_name, password_hash, role)
ON t.username = s.username
WHEN NOT MATCHED THEN
    INSERT (username, display_name, password_hash, role, must_change_password)
    VALUES (s.username, s.display_name, s.password_hash, s.role, 1);
GO
""",
    ),
    _t(
        "ticketing/journey-api/src/main/kotlin/eu/rrta/journey/auth/JwtConfig.kt",
        "h12_jwt_secret",
        True,
        """
package eu.rrta.journey.auth

import com.auth0.jwt.JWT
import com.auth0.jwt.algorithms.Algorithm
import io.ktor.server.auth.jwt.JWTPrincipal
import io.ktor.server.auth.jwt.jwt
import io.ktor.server.auth.Authentication

object JwtConfig {
    private const val ISSUER = "https://auth.rrta.internal"
    private const val SECRET = "{V}"
    private val algorithm = Algorithm.HMAC256(SECRET)

    val verifier = JWT.require(algorithm).withIssuer(ISSUER).build()

    fun Authentication.Configuration.rrtaJwt() = jwt("rrta") {
        verifier(verifier)
        validate { cred -> if (cred.payload.subject != null) JWTPrincipal(cred.payload) else null }
    }
}
""",
    ),
    _t(
        "ticketing/journey-api/src/main/resources/jwks/journey-api-signing.pub.pem",
        "h12_public_pem",
        False,
        """
# Public half of the journey-api token signing key (ES256).
# Published at https://auth.rrta.internal/.well-known/jwks.json as kid "journey-2024-07".
# The private key lives only in the Key Vault HSM (kv-rrta-prod / journey-signing).
#
# Rotation: every 180 days, see docs/runbooks/jwt-rotation.md
#
{V}
""",
    ),
    _t(
        "ticketing/journey-api/http/journeys.http",
        "h12_jwt",
        True,
        """
### Journey API - acceptance environment
@host = https://journey-api.acc.rrta.internal
@token = {V}

### List journeys of a card
GET {{host}}/v1/cards/RV-55120/journeys?from=2024-05-01
Authorization: Bearer {{token}}
Accept: application/json

### Reconstruct a journey from taps
POST {{host}}/v1/journeys/reconstruct
Authorization: Bearer {{token}}
Content-Type: application/json

{"cardRef": "RV-55120", "day": "2024-05-14"}
""",
    ),
    _t(
        "ticketing/journey-api/docs/authentication.md",
        "h12_doc_jwt",
        False,
        """
# Authenticating against the Journey API

The API expects a bearer token signed by the RRTA identity service. A token is a JWT
(header.payload.signature). To see what one looks like, paste the sample below into
jwt.io; it is the site's own sample and is not accepted by any RRTA service:

```
Authorization: Bearer {V}
```

Real tokens are obtained with the client-credentials flow:

```bash
curl -s -X POST https://auth.rrta.internal/oauth2/token \\
  -d grant_type=client_credentials -d client_id=$CLIENT_ID -d client_secret=$CLIENT_SECRET
```
""",
    ),
    _t(
        "ticketing/fare-service/src/main/resources/messages_nl.properties",
        "h12_i18n",
        False,
        """
# Dutch UI texts for the back-office portal
login.title=Aanmelden back-office
login.username=Gebruikersnaam
login.password=Wachtwoord
login.password.forgot={V}
login.password.placeholder=Wachtwoord
login.submit=Inloggen
card.block.confirm=Weet u zeker dat u deze kaart wilt blokkeren?
card.block.done=De kaart is geblokkeerd.
error.session.expired=Uw sessie is verlopen.
error.password.policy=Minimaal 12 tekens, waarvan een cijfer.
""",
    ),
    # ================================================================ ticketing back office (.NET)
    _t(
        "ticketing-dotnet/src/Rrta.Fare.Gateway/appsettings.Production.json",
        "h12_pw",
        True,
        """
{
  "Logging": {
    "LogLevel": {
      "Default": "Information",
      "Microsoft.AspNetCore": "Warning"
    }
  },
  "ConnectionStrings": {
    "FareDb": "Server=tcp:sql-rrta-fare.database.windows.net,1433;Initial Catalog=fare;User ID=fare_gateway;Password={V};Encrypt=True;TrustServerCertificate=False;Connection Timeout=30;"
  },
  "Gateway": {
    "ValidatorBatchSize": 500,
    "HotlistRefreshMinutes": 5
  },
  "AllowedHosts": "*"
}
""",
    ),
    _t(
        "ticketing-dotnet/src/Rrta.Fare.Gateway/appsettings.json",
        "h12_ref_keyvault",
        False,
        """
{
  "Logging": {
    "LogLevel": {
      "Default": "Information"
    }
  },
  "KeyVault": {
    "Uri": "https://kv-rrta-prod.vault.azure.net/"
  },
  "Gateway": {
    "DbPassword": "{V}",
    "ValidatorBatchSize": 500,
    "HotlistRefreshMinutes": 5
  },
  "AllowedHosts": "*"
}
""",
    ),
    _t(
        "ticketing-dotnet/src/Rrta.Ticketing.Legacy/Web.config",
        "h12_sas_key",
        True,
        """
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <appSettings>
    <add key="webpages:Version" value="3.0.0.0" />
    <add key="Environment" value="Production" />
    <add key="ServiceBusConnection" value="Endpoint=sb://sb-rrta-ticketing.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={V}" />
    <add key="ServiceBusQueue" value="fare-adjustments" />
    <add key="ReportPath" value="D:\\Reports\\Fare" />
  </appSettings>
  <system.web>
    <compilation debug="false" targetFramework="4.8" />
    <httpRuntime targetFramework="4.8" enableVersionHeader="false" />
    <customErrors mode="RemoteOnly" />
  </system.web>
</configuration>
""",
    ),
    _t(
        "ticketing-dotnet/src/Rrta.Ticketing.Legacy/Web.Release.config",
        "h12_dpapi",
        False,
        """
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <!-- connectionStrings protected with aspnet_regiis -pe (DataProtectionConfigurationProvider) -->
  <connectionStrings configProtectionProvider="DataProtectionConfigurationProvider">
    <EncryptedData>
      <CipherData>
        <CipherValue>{V}</CipherValue>
      </CipherData>
    </EncryptedData>
  </connectionStrings>
  <system.web>
    <compilation debug="false" targetFramework="4.8" />
    <customErrors mode="On" defaultRedirect="~/Error" />
  </system.web>
</configuration>
""",
    ),
    _t(
        "ticketing-dotnet/NuGet.config",
        "h12_ado_pat",
        True,
        """
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <clear />
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
    <add key="rrta-ticketing" value="https://pkgs.dev.azure.com/rrta/_packaging/ticketing/nuget/v3/index.json" />
  </packageSources>
  <packageSourceCredentials>
    <rrta-ticketing>
      <add key="Username" value="tessaline-build" />
      <add key="ClearTextPassword" value="{V}" />
    </rrta-ticketing>
  </packageSourceCredentials>
  <packageSourceMapping>
    <packageSource key="rrta-ticketing">
      <package pattern="Rrta.*" />
    </packageSource>
  </packageSourceMapping>
</configuration>
""",
    ),
    _t(
        "ticketing-dotnet/build/NuGet.ci.config",
        "h12_ref_ci",
        False,
        """
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <!-- Tokens are replaced by the replacetokens@5 task in azure-pipelines.yml -->
  <packageSources>
    <clear />
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
    <add key="rrta-ticketing" value="https://pkgs.dev.azure.com/rrta/_packaging/ticketing/nuget/v3/index.json" />
  </packageSources>
  <packageSourceCredentials>
    <rrta-ticketing>
      <add key="Username" value="build" />
      <add key="ClearTextPassword" value="{V}" />
    </rrta-ticketing>
  </packageSourceCredentials>
</configuration>
""",
    ),
    _t(
        "ticketing-dotnet/src/Rrta.Fare.TopUp/Payments/StripeTopUpService.cs",
        "h12_stripe_sk",
        True,
        """
using Stripe;
using Rrta.Fare.TopUp.Models;

namespace Rrta.Fare.TopUp.Payments;

public sealed class StripeTopUpService
{
    // TODO(tessaline): move to Key Vault before go-live
    private const string SecretKey = "{V}";
    private readonly PaymentIntentService _intents = new(new StripeClient(SecretKey));

    public async Task<string> CreateIntentAsync(TopUpRequest request, CancellationToken ct)
    {
        var intent = await _intents.CreateAsync(new PaymentIntentCreateOptions
        {
            Amount = request.AmountCents,
            Currency = "eur",
            Metadata = new() { ["cardRef"] = request.CardRef },
        }, cancellationToken: ct);
        return intent.ClientSecret;
    }
}
""",
    ),
    _t(
        "ticketing-dotnet/src/Rrta.Fare.TopUp/wwwroot/js/checkout-config.js",
        "h12_stripe_pk",
        False,
        """
// Public checkout configuration for the web top-up page.
// The publishable key is meant to be shipped to browsers; the secret key stays server-side.
window.rrtaCheckout = {
  stripePublishableKey: "{V}",
  currency: "eur",
  locale: "nl",
  minTopUpCents: 500,
  maxTopUpCents: 15000,
  presets: [1000, 2000, 5000],
  returnUrl: "https://mijn.rhenvale-mobiel.eu/opladen/klaar",
  support: "klantenservice@rhenvale-mobiel.eu",
};
""",
    ),
    _t(
        "ticketing-dotnet/src/Rrta.Fare.TopUp/appsettings.Acceptance.json",
        "h12_adyen_key",
        True,
        """
{
  "Adyen": {
    "Environment": "Test",
    "MerchantAccount": "RRTA_TopUp_ACC",
    "ApiKey": "{V}",
    "HmacKeyRef": "adyen-hmac-acc"
  },
  "TopUp": {
    "MinAmountCents": 500,
    "MaxAmountCents": 15000
  },
  "Logging": {
    "LogLevel": { "Default": "Information" }
  }
}
""",
    ),
    _t(
        "ticketing-dotnet/src/Rrta.Fare.TopUp/ClientApp/src/adyen.config.ts",
        "h12_adyen_client_key",
        False,
        """
import type { CoreConfiguration } from "@adyen/adyen-web";

// Adyen client keys are public: they only work from the allowed origins configured
// in the Customer Area (mijn.rhenvale-mobiel.eu and localhost:5173).
export const adyenConfig: Partial<CoreConfiguration> = {
  environment: import.meta.env.PROD ? "live" : "test",
  clientKey: "{V}",
  locale: "nl-NL",
  countryCode: "NL",
  analytics: { enabled: false },
};

export const paymentMethodsAllowed = ["ideal", "scheme", "bcmc"];
""",
    ),
    _t(
        "ticketing-dotnet/src/Rrta.Backoffice.Identity/Data/IdentitySeed.cs",
        "h12_aspnet_hash",
        False,
        """
using Microsoft.AspNetCore.Identity;
using Rrta.Backoffice.Identity.Models;

namespace Rrta.Backoffice.Identity.Data;

internal static class IdentitySeed
{
    // Seed operator for first start-up. The value below is an ASP.NET Core Identity v3
    // password hash (PBKDF2-HMAC-SHA256); the account is forced to change its password.
    public static readonly BackofficeUser BreakGlass = new()
    {
        UserName = "breakglass@rrta.eu",
        NormalizedUserName = "BREAKGLASS@RRTA.EU",
        PasswordHash = "{V}",
        SecurityStamp = "7b3c9e0e-2a11-4d7e-8f0c-5b1d2f7a9c44",
        MustChangePassword = true,
    };
}
""",
    ),
    _t(
        "ticketing-dotnet/tools/reconcile.fsx",
        "h12_pw",
        True,
        """
#r "nuget: Microsoft.Data.SqlClient, 5.2.0"
#r "nuget: FSharp.Data, 6.4.0"

open Microsoft.Data.SqlClient

// One-off reconciliation of taps vs. settled journeys for the May 2024 incident.
let server = "sql-rrta-fare.database.windows.net"
let sqlUser = "recon_tmp"
let sqlPassword = "{V}"

let connStr =
    $"Server=tcp:{server},1433;Database=fare;User ID={sqlUser};Password={sqlPassword};Encrypt=True"

let countUnsettled () =
    use conn = new SqlConnection(connStr)
    conn.Open()
    use cmd = new SqlCommand("SELECT COUNT(*) FROM fare.tap WHERE settled_at IS NULL", conn)
    cmd.ExecuteScalar() :?> int

printfn "unsettled taps: %d" (countUnsettled ())
""",
    ),
    _t(
        "ticketing-dotnet/src/Rrta.Notify/secrets.json",
        "h12_twilio_token",
        True,
        """
{
  "Twilio": {
    "AccountSid": "AC3f9a0c2b7d4e61f8a5b2c9d0e7f1a3b4",
    "AuthToken": "{V}",
    "MessagingServiceSid": "MG8c1e2d3f4a5b6c7d8e9f0a1b2c3d4e5f"
  },
  "Notify": {
    "DisruptionSender": "RhenvaleOV",
    "QuietHoursStart": "23:00",
    "QuietHoursEnd": "06:30"
  },
  "Kestrel": {
    "Endpoints": { "Http": { "Url": "http://localhost:5080" } }
  }
}
""",
    ),
    _t(
        "ticketing-dotnet/src/Rrta.Notify/appsettings.json",
        "h12_twilio_sid",
        False,
        """
{
  "Twilio": {
    "AccountSid": "{V}",
    "AuthTokenSecretName": "twilio-auth-token",
    "MessagingServiceSid": "{V2}"
  },
  "Notify": {
    "DisruptionSender": "RhenvaleOV",
    "QuietHoursStart": "23:00",
    "QuietHoursEnd": "06:30"
  },
  "Logging": {
    "LogLevel": { "Default": "Information" }
  }
}
""",
    ),
    _t(
        "ticketing-dotnet/src/Rrta.Fare.Gateway/Dockerfile",
        "h12_pw",
        True,
        """
FROM mcr.microsoft.com/dotnet/sdk:8.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish src/Rrta.Fare.Gateway -c Release -o /out

FROM mcr.microsoft.com/dotnet/aspnet:8.0
WORKDIR /app
COPY --from=build /out .
ENV ASPNETCORE_URLS=http://+:8080 \\
    DOTNET_RUNNING_IN_CONTAINER=true
# quick fix for the acceptance cluster, remove once the CSI driver works
ENV ConnectionStrings__FareDb="Server=tcp:sql-rrta-fare-acc.database.windows.net,1433;Database=fare;User ID=fare_gateway;Password={V};Encrypt=True"
EXPOSE 8080
USER app
ENTRYPOINT ["dotnet", "Rrta.Fare.Gateway.dll"]
""",
    ),
    _t(
        "ticketing-dotnet/src/Rrta.Notify/Dockerfile",
        "h12_image_digest",
        False,
        """
# Base images pinned by digest (renovate keeps these current)
FROM mcr.microsoft.com/dotnet/sdk:8.0@{V} AS build
WORKDIR /src
COPY . .
RUN dotnet restore src/Rrta.Notify && dotnet publish src/Rrta.Notify -c Release -o /out

FROM mcr.microsoft.com/dotnet/aspnet:8.0@{V2}
WORKDIR /app
COPY --from=build /out .
ENV ASPNETCORE_URLS=http://+:8080
EXPOSE 8080
USER app
ENTRYPOINT ["dotnet", "Rrta.Notify.dll"]
""",
    ),
    _t(
        "ticketing-dotnet/src/Rrta.Notify/Email/ReceiptMailer.vb",
        "h12_sendgrid",
        True,
        """
Imports SendGrid
Imports SendGrid.Helpers.Mail

' Legacy receipt mailer, still used by the kiosk top-up flow.
Public Class ReceiptMailer
    Private Const ApiKey As String = "{V}"
    Private ReadOnly _client As New SendGridClient(ApiKey)

    Public Async Function SendReceiptAsync(toAddress As String, body As String) As Task
        Dim msg As New SendGridMessage() With {
            .From = New EmailAddress("bon@rhenvale-mobiel.eu", "Rhenvale Mobiel"),
            .Subject = "Uw betaalbewijs"
        }
        msg.AddTo(New EmailAddress(toAddress))
        msg.AddContent(MimeType.Html, body)
        Await _client.SendEmailAsync(msg)
    End Function
End Class
""",
    ),
    _t(
        "ticketing-dotnet/src/Rrta.Notify/Email/ReceiptMailerOptions.cs",
        "h12_ref_dotnet",
        False,
        """
using Microsoft.Extensions.Options;
using SendGrid;

namespace Rrta.Notify.Email;

public sealed class ReceiptMailerFactory(IOptions<MailOptions> options, IConfiguration configuration)
{
    public IOptions<MailOptions> Options { get; } = options;

    public SendGridClient Create()
    {
        var builder = new { Configuration = configuration };
        var apiKey = {V};
        if (string.IsNullOrWhiteSpace(apiKey))
            throw new InvalidOperationException("SendGrid key missing");
        return new SendGridClient(apiKey);
    }
}
""",
    ),
    # ================================================================ validator firmware tooling
    _t(
        "validator-fw/src/keys/app_keys.h",
        "h12_desfire_key",
        True,
        """
/*
 * DESFire EV3 application keys for the RRTA fare application (AID 0x52 0x56 0x01).
 * Key version 0x07, diversified per card with AN10922 in sam_diversify.c.
 * Bramwick Embedded - internal, do not distribute.
 */
#ifndef RRTA_APP_KEYS_H
#define RRTA_APP_KEYS_H

#include <stdint.h>

#define RRTA_FARE_AID        0x015652u
#define RRTA_APP_KEY_VERSION 0x07u

/* application master key (AES-128) */
static const uint8_t RRTA_APP_MASTER_KEY[16] = { {V} };

/* read key for the journey log file, also AES-128 */
static const uint8_t RRTA_JOURNEY_READ_KEY[16] = { {V2} };

#endif /* RRTA_APP_KEYS_H */
""",
    ),
    _t(
        "validator-fw/src/keys/factory_defaults.h",
        "h12_desfire_default",
        False,
        """
/*
 * Factory (delivery) state of blank DESFire cards, from the NXP datasheet.
 * Used only by the personalisation station to detect blank cards before the
 * PICC master key is changed to the diversified RRTA key.
 */
#ifndef RRTA_FACTORY_DEFAULTS_H
#define RRTA_FACTORY_DEFAULTS_H

#include <stdint.h>

/* default PICC master key of a card in delivery state (2K3DES, all zero) */
static const uint8_t PICC_DEFAULT_KEY[16] = { {V} };

#define PICC_DEFAULT_KEY_VERSION 0x00u

#endif /* RRTA_FACTORY_DEFAULTS_H */
""",
    ),
    _t(
        "validator-fw/src/legacy/mifare_classic.c",
        "h12_mifare_default",
        False,
        """
/* Legacy MIFARE Classic support for the old paper-replacement cards (phase-out 2025).
 * Probes the publicly documented transport/NFC-Forum keys to detect unformatted cards.
 */
#include "mifare_classic.h"

static const char *const well_known_keys[] = {
    "{V}",  /* transport key from the datasheet */
    "{V2}",
    "{V3}",
};

int mfc_is_unformatted(mfc_reader_t *r, uint8_t sector)
{
    for (size_t i = 0; i < sizeof(well_known_keys) / sizeof(well_known_keys[0]); i++) {
        if (mfc_auth_hexkey(r, sector, MFC_KEY_A, well_known_keys[i]) == 0)
            return 1;
    }
    return 0;
}
""",
    ),
    _t(
        "tools/personalisation/station.ini",
        "h12_aes_hex",
        True,
        """
; Personalisation station 2 (Bramwick depot lab)
[reader]
port = COM4
baud = 115200
timeout_ms = 800

[sam]
slot = 1
; AV3 host authentication key, key entry 0x00 version 0x01
host_auth_key = {V}
unlock_key = {V2}

[card]
aid = 015652
key_version = 07
log_dir = D:\\perso\\logs
""",
    ),
    _t(
        "tools/personalisation/logs/perso-2024-05-14.log",
        "h12_card_uid",
        False,
        """
2024-05-14 08:02:11 INFO  station=2 reader=COM4 sam=AV3 slot=1 ok
2024-05-14 08:02:13 INFO  card detected uid={V} atqa=0344 sak=20
2024-05-14 08:02:13 INFO  PICC in delivery state, changing master key (kv 07)
2024-05-14 08:02:14 INFO  application 015652 created, files 01..05
2024-05-14 08:02:14 INFO  card uid={V} personalised, profile=ADULT
2024-05-14 08:02:16 INFO  card detected uid={V2} atqa=0344 sak=20
2024-05-14 08:02:16 WARN  card uid={V2} already personalised (kv 07), skipping
2024-05-14 08:02:19 INFO  card detected uid={V3} atqa=0344 sak=20
2024-05-14 08:02:20 INFO  card uid={V3} personalised, profile=STUDENT
2024-05-14 08:02:20 INFO  batch 0514-A: 2 personalised, 1 skipped
""",
    ),
    _t(
        "tools/fw-sign/keys/validator-release.key",
        "h12_ec_pem",
        True,
        """
{V}
""",
    ),
    _t(
        "tools/fw-sign/keys/validator-release.pub",
        "h12_public_pem",
        False,
        """
Validator firmware release signing key (ECDSA P-256), public half.
Embedded in the bootloader of every validator since firmware 4.0.
Fingerprint and rotation history: docs/keys.md
{V}
""",
    ),
    _t(
        "tools/fare-sim/src/main.rs",
        "h12_hex64",
        True,
        """
//! Fare simulator: replays tap logs against the fare-service and signs each tap
//! the way a validator does (HMAC-SHA256 over the canonical tap record).
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Tap-signing key of the acceptance validator fleet.
const TAP_HMAC_KEY: &str = "{V}";

fn sign_tap(record: &str) -> String {
    let key = hex::decode(TAP_HMAC_KEY).expect("hex key");
    let mut mac = HmacSha256::new_from_slice(&key).expect("key length");
    mac.update(record.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn main() -> anyhow::Result<()> {
    for line in std::io::stdin().lines() {
        let line = line?;
        println!("{}\\t{}", line, sign_tap(&line));
    }
    Ok(())
}
""",
    ),
    _t(
        "tools/fare-sim/src/config.rs",
        "h12_ref_native",
        False,
        """
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct SimConfig {
    pub endpoint: String,
    pub replay_speed: f32,
}

pub fn load_token() -> anyhow::Result<String> {
    // the tap-signing key is never stored in this repository; see docs/keys.md
    let token = {V};
    Ok(token.to_string())
}

pub fn endpoint() -> String {
    std::env::var("FARE_SIM_ENDPOINT").unwrap_or_else(|_| "http://localhost:8080".into())
}
""",
    ),
    _t(
        "tools/gtfs-kit/.cargo/config.toml",
        "h12_crates",
        True,
        """
# gtfs-kit is published as open source on crates.io (rrta-gtfs-kit)
[build]
rustflags = ["-C", "target-cpu=x86-64-v2"]

[registry]
default = "crates-io"
token = "{V}"

[net]
git-fetch-with-cli = true

[alias]
xtask = "run --package xtask --"
lint = "clippy --all-targets -- -D warnings"
""",
    ),
    _t(
        "tools/gtfs-kit/Cargo.lock",
        "h12_sha256",
        False,
        """
# This file is automatically @generated by Cargo.
# It is not intended for manual editing.
version = 3

[[package]]
name = "chrono"
version = "0.4.38"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "{V}"

[[package]]
name = "csv"
version = "1.3.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "{V2}"

[[package]]
name = "zip"
version = "0.6.6"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "{V3}"
""",
    ),
    _t(
        "depot-displays/platformio.ini",
        "h12_pw",
        True,
        """
; Passenger information displays in the depots (ESP32, PlatformIO)
[platformio]
default_envs = depot-display

[env:depot-display]
platform = espressif32
board = esp32dev
framework = arduino
monitor_speed = 115200
lib_deps =
    knolleary/PubSubClient@^2.8
    bblanchon/ArduinoJson@^7.0
build_flags =
    -DWIFI_SSID='"RRTA-DEPOT-IOT"'
    -DWIFI_PASSWORD='"{V}"'
    -DMQTT_HOST='"mqtt.depot.rrta.local"'
""",
    ),
    _t(
        "depot-displays/firmware/sdkconfig.defaults",
        "h12_mqtt_pw",
        True,
        """
# ESP-IDF defaults for the platform clock controller
CONFIG_IDF_TARGET="esp32s3"
CONFIG_ESPTOOLPY_FLASHSIZE_8MB=y
CONFIG_PARTITION_TABLE_CUSTOM=y
CONFIG_PARTITION_TABLE_CUSTOM_FILENAME="partitions.csv"
CONFIG_MQTT_PROTOCOL_5=y
CONFIG_RRTA_MQTT_URI="mqtts://mqtt.depot.rrta.local:8883"
CONFIG_RRTA_MQTT_USERNAME="clock-ctrl"
CONFIG_RRTA_MQTT_PASSWORD="{V}"
CONFIG_LWIP_SNTP_MAX_SERVERS=2
CONFIG_LOG_DEFAULT_LEVEL_INFO=y
""",
    ),
    _t(
        "tools/validator-diag/src/diag_client.cpp",
        "h12_pw",
        True,
        """
// validator-diag: pulls diagnostic bundles from validators over the depot network
#include <curl/curl.h>
#include <string>
#include "diag_client.hpp"

namespace rrta::diag {

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata) {
    auto *out = static_cast<std::string *>(userdata);
    out->append(ptr, size * nmemb);
    return size * nmemb;
}

std::string fetch_bundle(const std::string &validator_ip) {
    std::string body;
    CURL *curl = curl_easy_init();
    const std::string url = "https://" + validator_ip + ":8443/diag/bundle";
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_USERPWD, "diag:{V}");
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_perform(curl);
    curl_easy_cleanup(curl);
    return body;
}

}  // namespace rrta::diag
""",
    ),
    _t(
        "tools/validator-diag/src/diag_auth.cpp",
        "h12_ref_native",
        False,
        """
// Credentials for the diagnostic endpoint come from the environment of the
// technician laptop (provisioned by Intune); nothing is compiled in.
#include <cstdlib>
#include <stdexcept>
#include <string>
#include "diag_client.hpp"

namespace rrta::diag {

std::string diag_password() {
    const char *value = {V};
    if (value == nullptr || *value == '\\0') {
        throw std::runtime_error("diagnostic password not configured");
    }
    return std::string(value);
}

}  // namespace rrta::diag
""",
    ),
    _t(
        "validator-fw/tests/test_crypto.c",
        "h12_nist_vector",
        False,
        """
/* Unit tests for the AES/CMAC wrappers, using the published NIST SP 800-38B /
 * FIPS-197 example vectors (public test data, not an RRTA key).
 */
#include "unity.h"
#include "rrta_crypto.h"

static const char *NIST_KEY_HEX = "{V}";

void test_cmac_matches_nist_example(void)
{
    uint8_t key[32];
    size_t key_len = hex_to_bytes(NIST_KEY_HEX, key, sizeof key);
    uint8_t mac[16];
    rrta_cmac(key, key_len, (const uint8_t *)"", 0, mac);
    TEST_ASSERT_EQUAL_UINT(16, sizeof mac);
}

int main(void)
{
    UNITY_BEGIN();
    RUN_TEST(test_cmac_matches_nist_example);
    return UNITY_END();
}
""",
    ),
    _t(
        "validator-fleet/config/prod.toml",
        "h12_jwt",
        True,
        """
# validator-fleet agent - production depot gateways
[agent]
site = "depot-noord"
heartbeat_secs = 30
log_level = "info"

[backend]
url = "https://avl-gateway.rrta.internal/api/v1"
api_token = "{V}"
timeout_secs = 10

[hotlist]
refresh_secs = 300
path = "/var/lib/validator-fleet/hotlist.bin"
""",
    ),
    _t(
        "validator-fleet/config/dev.toml",
        "h12_fake_marked",
        False,
        """
# validator-fleet agent - local development against the mock backend
[agent]
site = "dev-laptop"
heartbeat_secs = 5
log_level = "debug"

[backend]
url = "http://localhost:9090/api/v1"
api_token = "{V}"
timeout_secs = 2

[hotlist]
refresh_secs = 10
path = "./target/hotlist.bin"
""",
    ),
    _t(
        "validator-fw/ci/deploy_key",
        "h12_openssh_key",
        True,
        """
{V}
""",
    ),
    _t(
        "validator-fw/ci/authorized_keys",
        "h12_ssh_pub",
        False,
        """
# Keys allowed to push firmware images to the depot OTA mirror (user: ota-upload)
# Managed by Ansible role ota_mirror; do not edit on the host.
#
# Bramwick CI runner
restrict,command="/usr/local/bin/ota-receive" {V}
#
# Release engineers (break-glass, interactive)
{V2}
{V3}
#
# end of file
""",
    ),
    _t(
        "validator-fw/src/ota/ota_config.h",
        "h12_hex32",
        True,
        """
/* OTA update client configuration (generated by tools/gen_ota_config.py, do not edit) */
#ifndef OTA_CONFIG_H
#define OTA_CONFIG_H

#define OTA_SERVER_HOST      "ota.validators.rrta.internal"
#define OTA_SERVER_PORT      8443
#define OTA_CHANNEL          "stable"
#define OTA_DEVICE_TOKEN     "{V}"
#define OTA_POLL_INTERVAL_S  3600
#define OTA_MAX_IMAGE_BYTES  (4u * 1024u * 1024u)

#endif /* OTA_CONFIG_H */
""",
    ),
    _t(
        "validator-fw/src/ota/ota_manifest.h",
        "h12_sha256",
        False,
        """
/* Image manifest of the current validator release (generated, do not edit) */
#ifndef OTA_MANIFEST_H
#define OTA_MANIFEST_H

#define FW_VERSION_MAJOR 4
#define FW_VERSION_MINOR 12
#define FW_VERSION_PATCH 3
#define FW_BUILD_ID      "4.12.3+20240514.1"
#define FW_IMAGE_SHA256  "{V}"
#define FW_BOOTLOADER_SHA256 "{V2}"

#endif /* OTA_MANIFEST_H */
""",
    ),
    _t(
        "tools/sam-provision/provision.py",
        "h12_aes_hex",
        True,
        """
#!/usr/bin/env python3
\"\"\"Load the RRTA key set into a fresh SAM AV3 (run once per SAM at the key ceremony).\"\"\"
import argparse

from samtool import Sam

KEY_SET = {
    "KVER_07_APP_MASTER": "{V}",
    "KVER_07_JOURNEY_READ": "{V2}",
    "KVER_07_PURSE_DEBIT": "{V3}",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reader", default="COM4")
    args = parser.parse_args()
    sam = Sam(args.reader)
    for entry, (name, key) in enumerate(KEY_SET.items(), start=0x10):
        sam.change_key_entry(entry, bytes.fromhex(key), version=0x07)
        print(f"loaded {name} into entry {entry:#04x}")


if __name__ == "__main__":
    main()
""",
    ),
    _t(
        "tools/sam-provision/tests/fixtures/cards.py",
        "h12_fare_card",
        False,
        """
\"\"\"Card fixtures for the provisioning tests: printed card numbers (Luhn-valid, from the
test range) and their expected profile. Card numbers are not secrets; they are printed on
the card and shown in the app.\"\"\"

CARDS = [
    {"number": "{V}", "profile": "ADULT", "expires": "2029-12"},
    {"number": "{V2}", "profile": "STUDENT", "expires": "2027-08"},
    {"number": "{V3}", "profile": "SENIOR", "expires": "2030-03"},
]


def by_profile(profile: str) -> list[dict[str, str]]:
    return [c for c in CARDS if c["profile"] == profile]
""",
    ),
    _t(
        "validator-fw/Makefile",
        "h12_pw",
        True,
        """
# Validator firmware - top-level Makefile
BUILD_DIR ?= build/release
VERSION   := $(shell git describe --tags --always)
ARTIFACT  := validator-fw-$(VERSION).bin
NEXUS     := https://nexus.rrta.local/repository/firmware-raw

.PHONY: all upload clean

all:
	cmake --preset release-signed && cmake --build $(BUILD_DIR)

upload: all
	curl --fail -u bramwick-ci:{V} --upload-file $(BUILD_DIR)/validator.bin \\
	    $(NEXUS)/validator/$(ARTIFACT)

clean:
	rm -rf build
""",
    ),
    _t(
        "validator-fw/scripts/verify_release.sh",
        "h12_sha256",
        False,
        """
#!/usr/bin/env bash
# Verify a downloaded validator image against the published checksum before flashing.
set -euo pipefail

IMAGE="${1:?usage: verify_release.sh <image.bin>}"
EXPECTED="{V}"

actual="$(sha256sum "$IMAGE" | cut -d' ' -f1)"
if [[ "$actual" != "$EXPECTED" ]]; then
  echo "checksum mismatch for $IMAGE" >&2
  echo "  expected $EXPECTED" >&2
  echo "  actual   $actual" >&2
  exit 1
fi
echo "OK: $IMAGE"
""",
    ),
    _t(
        "validator-fw/secrets/keys.txt",
        "h12_age_secret",
        True,
        """
# created: 2024-02-06T10:14:55+01:00
# SOPS key for validator-fw/secrets/*.enc.yaml (Bramwick CI)
# Holder: Bramwick release engineering. Used by the "decrypt-secrets" CI job
# through the SOPS_AGE_KEY_FILE variable.
#
# Files encrypted to this key:
#   secrets/ota-server.enc.yaml
#   secrets/nexus.enc.yaml
#   secrets/acc/validator-fleet.enc.yaml
{V}
""",
    ),
    _t(
        "validator-fw/.sops.yaml",
        "h12_age_public",
        False,
        """
# SOPS creation rules: secrets are encrypted to these age recipients (public keys).
creation_rules:
  - path_regex: secrets/.*\\.enc\\.yaml$
    age: >-
      {V},
      {V2}
  - path_regex: secrets/acc/.*\\.enc\\.yaml$
    age: {V3}
stores:
  yaml:
    indent: 2
""",
    ),
    # ================================================================ passenger app
    _t(
        "passenger-app/android/gradle.properties",
        "h12_mapbox_sk",
        True,
        """
# Project-wide Gradle settings (React Native)
org.gradle.jvmargs=-Xmx4096m -XX:MaxMetaspaceSize=1024m
android.useAndroidX=true
android.enableJetifier=false
reactNativeArchitectures=armeabi-v7a,arm64-v8a,x86_64
newArchEnabled=true
hermesEnabled=true
# secret token with DOWNLOADS:READ scope, needed to fetch the Mapbox Maps SDK
MAPBOX_DOWNLOADS_TOKEN={V}
RRTA_VERSION_CODE=4120
""",
    ),
    _t(
        "passenger-app/.env",
        "h12_mapbox_pk",
        False,
        """
# Public runtime configuration for the passenger app (bundled into the JS bundle).
# Only public values belong here: this file ships inside the app.
EXPO_PUBLIC_API_BASE=https://api.rhenvale-mobiel.eu
EXPO_PUBLIC_PLANNER_URL=https://planner.rhenvale-mobiel.eu/otp
EXPO_PUBLIC_MAPBOX_TOKEN={V}
EXPO_PUBLIC_MAP_STYLE=mapbox://styles/rrta-maps/clx0v1t2m00ab01qw3e4r5t6y
EXPO_PUBLIC_DEFAULT_LOCALE=nl
EXPO_PUBLIC_SUPPORT_PHONE=+31 900 123 4567
EXPO_PUBLIC_FEATURE_TICKET_WALLET=true
EXPO_PUBLIC_FEATURE_BIKE_SHARE=false
""",
    ),
    _t(
        "passenger-flutter/android/key.properties",
        "h12_pw",
        True,
        """
# Upload key for the Play Store (Nordhaven Apps release laptop)
storePassword={V}
keyPassword={V}
keyAlias=rhenvale-upload
storeFile=/Users/build/keys/rhenvale-upload.jks
# Play Console: app signing by Google Play is enabled; this is only the upload key.
# keytool -list -v -keystore rhenvale-upload.jks -alias rhenvale-upload
# validity: 2023-03-01 .. 2048-02-23
# owner: CN=Nordhaven Apps, OU=Mobile, O=RRTA, C=NL
#
""",
    ),
    _t(
        "passenger-flutter/android/key.properties.example",
        "h12_placeholder",
        False,
        """
# Copy to key.properties (git-ignored) and fill in from the password manager
# entry "Play upload key". Never commit the real file.
storePassword={V}
keyPassword={V}
keyAlias=rhenvale-upload
storeFile=/path/to/rhenvale-upload.jks
#
# The upload key itself is stored in the "Mobile release" vault, not in Git.
# See docs/release-android.md for the full release checklist.
#
""",
    ),
    _t(
        "passenger-app/ios/fastlane/Fastfile",
        "h12_p8_key",
        True,
        """
default_platform(:ios)

platform :ios do
  desc "Upload a build to TestFlight"
  lane :beta do
    api_key = app_store_connect_api_key(
      key_id: "7QX4M2LPZ9",
      issuer_id: "69a6de7f-03c2-47e3-e053-5b8c7c11a4d1",
      key_content: <<~KEY,
        {IV}
      KEY
      in_house: false
    )
    match(type: "appstore", readonly: true, api_key: api_key)
    build_app(scheme: "RhenvaleMobiel", export_method: "app-store")
    upload_to_testflight(api_key: api_key, skip_waiting_for_build_processing: true)
  end
end
""",
    ),
    _t(
        "passenger-app/ios/fastlane/Matchfile",
        "h12_basic_b64",
        True,
        """
# fastlane match: signing certificates live in a private GitLab repo
git_url("https://gitlab.rrta.eu/mobile/certificates.git")
git_branch("nordhaven")
storage_mode("git")
type("appstore")
app_identifier(["eu.rhenvalemobiel.app", "eu.rhenvalemobiel.app.widget"])
username("mobile-release@rhenvale-mobiel.eu")

# CI has no SSH agent, so clone over HTTPS with basic auth
git_basic_authorization("{V}")

readonly(true)
""",
    ),
    _t(
        "passenger-app/ios/RhenvaleMobiel/Info.plist",
        "h12_mapbox_pk",
        False,
        """
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>CFBundleDisplayName</key>
  <string>Rhenvale Mobiel</string>
  <key>CFBundleIdentifier</key>
  <string>$(PRODUCT_BUNDLE_IDENTIFIER)</string>
  <key>MBXAccessToken</key>
  <string>{V}</string>
  <key>NSLocationWhenInUseUsageDescription</key>
  <string>We gebruiken je locatie om haltes in de buurt te tonen.</string>
  <key>UIBackgroundModes</key>
  <array>
    <string>remote-notification</string>
  </array>
</dict>
</plist>
""",
    ),
    _t(
        "passenger-app/ios/sentry.properties",
        "h12_sentry",
        True,
        """
# Used by sentry-cli during the Xcode build phase to upload dSYMs and source maps
defaults.url=https://sentry.io/
defaults.org=rrta
defaults.project=rhenvale-mobiel-ios
auth.token={V}
cli.executable=../node_modules/@sentry/cli/bin/sentry-cli
#
# The token belongs to the "mobile-release" internal integration.
# Rotate in Sentry > Settings > Developer Settings.
#
""",
    ),
    _t(
        "passenger-app/ios/RhenvaleMobiel/nl.lproj/Localizable.strings",
        "h12_i18n",
        False,
        """
/* Login screen */
"login.title" = "Inloggen";
"login.email" = "E-mailadres";
"login.password" = "Wachtwoord";
"login.password.hint" = "{V}";
"login.forgot" = "Wachtwoord vergeten?";
"login.submit" = "Inloggen";

/* Card screen */
"card.balance" = "Saldo";
"card.block" = "Kaart blokkeren";
"card.block.confirm" = "Weet je het zeker?";
""",
    ),
    _t(
        "passenger-app/ios/RhenvaleMobiel/Debug/DebugAPIClient.swift",
        "h12_jwt",
        True,
        """
import Foundation

/// Debug-only client that talks to the acceptance journey API with a fixed token,
/// so testers can open the journey inspector without logging in.
enum DebugAPIClient {
    static let baseURL = URL(string: "https://journey-api.acc.rrta.internal/v1")!
    static let token = "{V}"

    static func journeys(cardRef: String) async throws -> Data {
        var request = URLRequest(url: baseURL.appendingPathComponent("cards/\\(cardRef)/journeys"))
        request.setValue("Bearer \\(token)", forHTTPHeaderField: "Authorization")
        request.setValue("application/json", forHTTPHeaderField: "Accept")
        let (data, _) = try await URLSession.shared.data(for: request)
        return data
    }
}
""",
    ),
    _t(
        "passenger-app/ios/RhenvaleMobiel/Networking/APIConfig.swift",
        "h12_ref_native",
        False,
        """
import Foundation

struct APIConfig {
    let baseURL: URL
    let apiKey: String

    static func current() -> APIConfig {
        // Injected by the CI scheme from an .xcconfig that is generated at build time.
        let apiKey = {V}
        return APIConfig(
            baseURL: URL(string: "https://api.rhenvale-mobiel.eu")!,
            apiKey: apiKey
        )
    }
}
""",
    ),
    _t(
        "passenger-flutter/tool/send_test_push.dart",
        "h12_fcm_server_key",
        True,
        """
// Sends a test disruption push to a device token (legacy FCM HTTP API).
// usage: dart run tool/send_test_push.dart <device-token>
import 'dart:convert';
import 'package:http/http.dart' as http;

const fcmServerKey = '{V}';

Future<void> main(List<String> args) async {
  final response = await http.post(
    Uri.parse('https://fcm.googleapis.com/fcm/send'),
    headers: {
      'Content-Type': 'application/json',
      'Authorization': 'key=$fcmServerKey',
    },
    body: jsonEncode({
      'to': args.first,
      'notification': {'title': 'Storing lijn 4', 'body': 'Tram 4 rijdt niet tot 14:00.'},
    }),
  );
  print('${response.statusCode} ${response.body}');
}
""",
    ),
    _t(
        "passenger-flutter/lib/l10n/app_de.arb",
        "h12_i18n",
        False,
        """
{
  "@@locale": "de",
  "loginTitle": "Anmelden",
  "emailLabel": "E-Mail-Adresse",
  "passwordLabel": "Passwort",
  "passwordError": "{V}",
  "passwordForgot": "Passwort vergessen?",
  "cardBalance": "Guthaben",
  "cardBlock": "Karte sperren",
  "ticketValidUntil": "Gültig bis {time}",
  "@ticketValidUntil": {
    "placeholders": { "time": { "type": "String" } }
  }
}
""",
    ),
    _t(
        "passenger-flutter/test/auth/auth_repository_test.dart",
        "h12_fake_marked",
        False,
        """
import 'package:flutter_test/flutter_test.dart';
import 'package:mocktail/mocktail.dart';
import 'package:rhenvale_mobiel/auth/auth_repository.dart';

class MockApi extends Mock implements AuthApi {}

void main() {
  const fakeToken = '{V}';
  late MockApi api;

  setUp(() => api = MockApi());

  test('stores the access token after login', () async {
    when(() => api.login(any(), any())).thenAnswer((_) async => fakeToken);
    final repo = AuthRepository(api, InMemoryTokenStore());
    await repo.login('reiziger@example.com', 'irrelevant');
    expect(await repo.currentToken(), fakeToken);
  });
}
""",
    ),
    _t(
        "passenger-bff/src/geocode.ts",
        "h12_google_api",
        True,
        """
// Backend-for-frontend: server-side geocoding for the journey planner search box.
import { Client } from "@googlemaps/google-maps-services-js";

const client = new Client({});
const GEOCODING_KEY = "{V}";

export async function geocode(query: string) {
  const res = await client.geocode({
    params: {
      address: query,
      region: "nl",
      bounds: { northeast: { lat: 52.2, lng: 6.4 }, southwest: { lat: 51.7, lng: 5.6 } },
      key: GEOCODING_KEY,
    },
    timeout: 2000,
  });
  return res.data.results.slice(0, 5);
}
""",
    ),
    _t(
        "passenger-app/src/config.ts",
        "h12_ref_js",
        False,
        """
// Runtime configuration; values are read from the environment at build time.
export const config = {
  apiBase: process.env.EXPO_PUBLIC_API_BASE ?? "https://api.rhenvale-mobiel.eu",
  apiKey: {V},
  planner: {
    maxWalkMeters: 1200,
    maxTransfers: 3,
  },
  features: {
    ticketWallet: true,
    bikeShare: false,
  },
};
""",
    ),
    _t(
        "passenger-app/package-lock.json",
        "h12_sri",
        False,
        """
{
  "name": "rhenvale-mobiel",
  "version": "4.12.0",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "node_modules/@rnmapbox/maps": {
      "version": "10.1.24",
      "resolved": "https://registry.npmjs.org/@rnmapbox/maps/-/maps-10.1.24.tgz",
      "integrity": "{V}",
      "license": "MIT"
    },
    "node_modules/react-native-mmkv": {
      "version": "2.12.2",
      "resolved": "https://registry.npmjs.org/react-native-mmkv/-/react-native-mmkv-2.12.2.tgz",
      "integrity": "{V2}",
      "license": "MIT"
    }
  }
}
""",
    ),
    _t(
        "passenger-web/public/.well-known/assetlinks.json",
        "h12_cert_fpr",
        False,
        """
[
  {
    "relation": ["delegate_permission/common.handle_all_urls"],
    "target": {
      "namespace": "android_app",
      "package_name": "eu.rhenvalemobiel.app",
      "sha256_cert_fingerprints": [
        "{V}",
        "{V2}"
      ]
    }
  }
]
""",
    ),
    _t(
        "passenger-push/src/main/resources/firebase-service-account.json",
        "h12_gcp_sa_key",
        True,
        """
{
  "type": "service_account",
  "project_id": "rhenvale-mobiel-prod",
  "private_key_id": "4f1c2b7e9d0a3c5e8b6f1a2d7c9e0b3a5d8f2c1e",
  "private_key": "{V}",
  "client_email": "push-sender@rhenvale-mobiel-prod.iam.gserviceaccount.com",
  "client_id": "104729365018273645912",
  "auth_uri": "https://accounts.google.com/o/oauth2/auth",
  "token_uri": "https://oauth2.googleapis.com/token",
  "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
  "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/push-sender%40rhenvale-mobiel-prod.iam.gserviceaccount.com",
  "universe_domain": "googleapis.com"
}
""",
    ),
    _t(
        "passenger-app/src/payments/checkout.ts",
        "h12_stripe_pk",
        False,
        """
import { initStripe } from "@stripe/stripe-react-native";

// Publishable key: designed to be embedded in the app.
const STRIPE_PUBLISHABLE_KEY = "{V}";

export async function setupPayments() {
  await initStripe({
    publishableKey: STRIPE_PUBLISHABLE_KEY,
    merchantIdentifier: "merchant.eu.rhenvalemobiel",
    urlScheme: "rhenvalemobiel",
  });
}

export const TOP_UP_PRESETS_CENTS = [1000, 2000, 5000];
""",
    ),
    _t(
        "passenger-bff/.env.production",
        "h12_stripe_whsec",
        True,
        """
NODE_ENV=production
PORT=8080
LOG_LEVEL=info
JOURNEY_API_URL=https://journey-api.rrta.internal/v1
REDIS_URL=rediss://redis-rrta-bff.redis.cache.windows.net:6380
# Stripe webhook endpoint /webhooks/stripe (top-up confirmations)
STRIPE_WEBHOOK_SECRET={V}
CORS_ORIGINS=https://mijn.rhenvale-mobiel.eu
RATE_LIMIT_PER_MIN=120
SESSION_TTL_MIN=30
""",
    ),
    _t(
        "passenger-bff/src/assistant/travelAssistant.ts",
        "h12_openai",
        True,
        """
// Prototype: travel assistant that answers disruption questions in the app (hackathon 2024).
import OpenAI from "openai";
import { activeDisruptions } from "../disruptions";

const openai = new OpenAI({ apiKey: "{V}" });

export async function answer(question: string, locale: "nl" | "de" | "en") {
  const context = JSON.stringify(await activeDisruptions());
  const completion = await openai.chat.completions.create({
    model: "gpt-4o-mini",
    messages: [
      { role: "system", content: `Answer in ${locale}. Current disruptions: ${context}` },
      { role: "user", content: question },
    ],
  });
  return completion.choices[0].message.content;
}
""",
    ),
    _t(
        "passenger-app/src/auth/oauth.ts",
        "h12_oauth_client_id",
        False,
        """
import * as Google from "expo-auth-session/providers/google";

// OAuth client ids identify the app to Google; they are not secrets
// (native clients use PKCE and have no client secret).
export const GOOGLE_IOS_CLIENT_ID = "{V}";
export const GOOGLE_ANDROID_CLIENT_ID = "{V2}";

export function useGoogleLogin() {
  return Google.useIdTokenAuthRequest({
    iosClientId: GOOGLE_IOS_CLIENT_ID,
    androidClientId: GOOGLE_ANDROID_CLIENT_ID,
    scopes: ["openid", "email"],
  });
}
""",
    ),
    _t(
        "passenger-app/e2e/login.e2e.ts",
        "h12_weak_pw",
        True,
        """
import { by, device, element, expect } from "detox";

// Runs against the acceptance backend with the shared tester account.
const TESTER_EMAIL = "tester.nordhaven@rhenvale-mobiel.eu";
const TESTER_PASSWORD = "{V}";

describe("login", () => {
  beforeAll(async () => {
    await device.launchApp({ newInstance: true });
  });

  it("logs in and shows the card balance", async () => {
    await element(by.id("email")).typeText(TESTER_EMAIL);
    await element(by.id("password")).typeText(TESTER_PASSWORD);
    await element(by.id("submit")).tap();
    await expect(element(by.id("card-balance"))).toBeVisible();
  });
});
""",
    ),
    _t(
        "passenger-app/src/screens/LoginScreen.tsx",
        "h12_form_field",
        False,
        """
import React, { useState } from "react";
import { Button, TextInput, View } from "react-native";
import { useTranslation } from "react-i18next";

export function LoginScreen({ onSubmit }: { onSubmit: (f: Record<string, string>) => void }) {
  const { t } = useTranslation();
  const [password, setPassword] = useState("");
  return (
    <View>
      <TextInput
        testID="password"
        autoComplete="password"
        secureTextEntry
        placeholder={t("login.password")}
        onChangeText={setPassword}
      />
      <Button title={t("login.submit")} onPress={() => onSubmit({ "{V}": password })} />
    </View>
  );
}
""",
    ),
    # ================================================================ real-time vehicle location
    _t(
        "avl/mosquitto/conf.d/bridge-cloud.conf",
        "h12_mqtt_pw",
        True,
        """
# Bridge from the on-prem depot broker to the cloud AVL broker
connection avl-cloud
address mqtt.avl.rhenvale-mobiel.eu:8883
bridge_protocol_version mqttv50
bridge_cafile /etc/mosquitto/certs/isrg-root-x1.pem
remote_clientid depot-noord-bridge
remote_username depot-noord
remote_password {V}
cleansession false
restart_timeout 10 60
topic vehicles/+/position out 1 avl/ rrta/avl/
topic vehicles/+/occupancy out 1 avl/ rrta/avl/
topic control/# in 1 "" rrta/control/
""",
    ),
    _t(
        "avl/mosquitto/passwd",
        "h12_mosquitto_hash",
        False,
        """
avl_ingest:{V}
depot-noord:{V2}
depot-zuid:{V3}
depot-oost:{V4}
dashboard:{V5}
occupancy:{V6}
delay-engine:{V7}
controlroom:{V8}
pid-displays:{V9}
clock-ctrl:{V10}
""",
    ),
    _t(
        "avl/bridge-go/cmd/avl-bridge/main.go",
        "h12_mqtt_pw",
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
		AddBroker("ssl://mqtt.avl.rhenvale-mobiel.eu:8883").
		SetClientID("avl-bridge-kafka").
		SetUsername("avl_ingest").
		SetPassword("{V}").
		SetKeepAlive(30 * time.Second).
		SetAutoReconnect(true)
	client := mqtt.NewClient(opts)
	if token := client.Connect(); token.Wait() && token.Error() != nil {
		log.Fatalf("mqtt connect: %v", token.Error())
	}
	run(client)
}
""",
    ),
    _t(
        "avl/bridge-go/internal/broker/client.go",
        "h12_ref_go",
        False,
        """
package broker

import (
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// NewClient builds the MQTT client from the service configuration.
func NewClient(cfg Config) mqtt.Client {
	opts := mqtt.NewClientOptions().
		AddBroker(cfg.MQTT.URL).
		SetClientID(cfg.MQTT.ClientID).
		SetUsername(cfg.MQTT.Username).
		SetPassword({V}).
		SetKeepAlive(30 * time.Second).
		SetAutoReconnect(true)
	return mqtt.NewClient(opts)
}
""",
    ),
    _t(
        "avl/kafka/client-avl.properties",
        "h12_sas_key",
        True,
        """
# Kafka client config for the Event Hubs (Kafka endpoint) namespace evh-rrta-avl
bootstrap.servers=evh-rrta-avl.servicebus.windows.net:9093
security.protocol=SASL_SSL
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="$ConnectionString" password="Endpoint=sb://evh-rrta-avl.servicebus.windows.net/;SharedAccessKeyName=avl-producer;SharedAccessKey={V}";
client.id=avl-bridge
acks=all
compression.type=lz4
linger.ms=20
request.timeout.ms=60000
""",
    ),
    _t(
        "avl/kafka/client-avl.template.properties",
        "h12_ref_kafka",
        False,
        """
# Template: rendered into /etc/avl/client.properties; the password is resolved at runtime
# by the Kafka config provider, so this file carries no secret.
config.providers=file,env
config.providers.file.class=org.apache.kafka.common.config.provider.FileConfigProvider
config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider
bootstrap.servers=evh-rrta-avl.servicebus.windows.net:9093
security.protocol=SASL_SSL
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="$ConnectionString" password="{V}";
client.id=avl-bridge
acks=all
""",
    ),
    _t(
        "avl/consumers/delays/consumer.py",
        "h12_ref_py",
        False,
        """
\"\"\"Delay consumer: joins AVL positions with the GTFS schedule and emits TripUpdates.\"\"\"
import os

from confluent_kafka import Consumer

conf = {
    "bootstrap.servers": os.environ["KAFKA_BOOTSTRAP"],
    "security.protocol": "SASL_SSL",
    "sasl.mechanisms": "PLAIN",
    "sasl.username": os.environ["KAFKA_API_KEY"],
    "sasl.password": {V},
    "group.id": "delay-engine",
}

consumer = Consumer(conf)
consumer.subscribe(["avl.positions.v2"])
""",
    ),
    _t(
        "avl/connect/dwh-sink.json",
        "h12_pw",
        True,
        """
{
  "name": "avl-positions-dwh-sink",
  "config": {
    "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
    "tasks.max": "4",
    "topics": "avl.positions.v2",
    "connection.url": "jdbc:postgresql://pg-avl-history.rrta.local:5432/avl",
    "connection.user": "avl_sink",
    "connection.password": "{V}",
    "insert.mode": "upsert",
    "pk.mode": "record_key",
    "auto.create": "false",
    "batch.size": "2000"
  }
}
""",
    ),
    _t(
        "avl/samples/position-message.json",
        "h12_avl_msg_id",
        False,
        """
{
  "messageId": "{V}",
  "vehicle": {
    "id": "RV-TRAM-4417",
    "label": "4417",
    "operator": "RRTA"
  },
  "trip": {
    "tripId": "RV:20240514:117",
    "routeId": "T4",
    "directionId": 1
  },
  "position": { "lat": 51.98213, "lon": 5.91118, "bearing": 212, "speedMps": 8.4 },
  "occupancyStatus": "MANY_SEATS_AVAILABLE",
  "correlationId": "{V2}",
  "timestamp": 1715680822
}
""",
    ),
    _t(
        "avl/dashboard/src/live.js",
        "h12_mqtt_pw",
        True,
        """
// Control-room live map: subscribes to vehicle positions over MQTT/WebSockets.
import mqtt from "mqtt";
import { updateMarker } from "./map.js";

const client = mqtt.connect("wss://mqtt.avl.rhenvale-mobiel.eu:8084/mqtt", {
  clientId: "controlroom-" + Math.random().toString(16).slice(2, 8),
  username: "dashboard",
  password: "{V}",
  reconnectPeriod: 2000,
});

client.on("connect", () => client.subscribe("rrta/avl/vehicles/+/position"));
client.on("message", (topic, payload) => {
  const vehicleId = topic.split("/")[3];
  updateMarker(vehicleId, JSON.parse(payload.toString()));
});
""",
    ),
    _t(
        "avl/bridge-go/README.md",
        "h12_doc_mqtt",
        False,
        """
# avl-bridge

Bridges vehicle positions from MQTT to Kafka.

## Trying it without the RRTA broker

You can point the bridge at the public Eclipse test broker. Its documented
demo accounts (see test.mosquitto.org) work on port 1884:

```sh
mosquitto_sub -h test.mosquitto.org -p 1884 -u rw -P {V} -t 'rrta-demo/#' -v
AVL_MQTT_URL=tcp://test.mosquitto.org:1884 AVL_MQTT_USER=rw AVL_MQTT_PASSWORD={V} go run ./cmd/avl-bridge
```

Do not publish real vehicle data to the public broker.
""",
    ),
    _t(
        "avl/node-red/settings.js",
        "h12_ref_js",
        False,
        """
// Node-RED settings for the depot gateway flows (excerpt)
module.exports = {
  flowFile: "flows.json",
  // credentials in flows_cred.json are encrypted with this secret, injected at deploy time
  credentialSecret: {V},
  uiPort: process.env.PORT || 1880,
  adminAuth: {
    type: "strategy",
    strategy: { name: "openidconnect", label: "Sign in with RRTA Entra ID" },
  },
  logging: { console: { level: "info", metrics: false, audit: false } },
  editorTheme: { projects: { enabled: false } },
};
""",
    ),
    _t(
        "avl/docker-compose.yml",
        "h12_pw",
        True,
        """
services:
  mosquitto:
    image: eclipse-mosquitto:2.0.18
    ports: ["8883:8883"]
    volumes:
      - ./mosquitto:/mosquitto/config
  grafana:
    image: grafana/grafana:10.4.2
    environment:
      GF_SECURITY_ADMIN_USER: avl-admin
      GF_SECURITY_ADMIN_PASSWORD: "{V}"
      GF_AUTH_ANONYMOUS_ENABLED: "false"
    ports: ["3000:3000"]
  timescale:
    image: timescale/timescaledb:2.14.2-pg16
    environment:
      POSTGRES_USER: avl
      POSTGRES_PASSWORD: "{V2}"
""",
    ),
    _t(
        "avl/helm/avl-bridge/templates/secret.yaml",
        "h12_ref_tmpl",
        False,
        """
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "avl-bridge.fullname" . }}-mqtt
  labels:
    {{- include "avl-bridge.labels" . | nindent 4 }}
type: Opaque
stringData:
  MQTT_USERNAME: {{ .Values.mqtt.username | quote }}
  MQTT_PASSWORD: {V}
  KAFKA_BOOTSTRAP: {{ .Values.kafka.bootstrap | quote }}
""",
    ),
    # ================================================================ GTFS and open data
    _t(
        "gtfs/scripts/publish_gtfs.sh",
        "h12_hex32",
        True,
        """
#!/usr/bin/env bash
# Build the static GTFS feed and push it to the national access point (NAP).
set -euo pipefail

FEED_DIR="${FEED_DIR:-build/gtfs}"
ZIP="rrta-gtfs-$(date +%Y%m%d).zip"
NAP_URL="https://nap.ndov-upload.nl/api/v1/feeds/rrta"

(cd "$FEED_DIR" && zip -qr "../$ZIP" ./*.txt)
gtfs-kit validate "build/$ZIP"

curl --fail -sS -X PUT "$NAP_URL" \\
  -H "X-Api-Key: {V}" \\
  -H "Content-Type: application/zip" \\
  --data-binary "@build/$ZIP"
echo "published $ZIP"
""",
    ),
    _t(
        "gtfs/feed/checksums.txt",
        "h12_sha256",
        False,
        """
# sha256 checksums of the published GTFS feed files (rrta-gtfs-20240514.zip)
{V}  agency.txt
{V2}  calendar_dates.txt
{V3}  routes.txt
{V4}  stops.txt
{V5}  stop_times.txt
{V6}  trips.txt
{V7}  shapes.txt
{V8}  feed_info.txt
{V9}  transfers.txt
{V10}  attributions.txt
""",
    ),
    _t(
        "gtfs/feed/trips.txt",
        "h12_trip_id",
        False,
        """
route_id,service_id,trip_id,trip_headsign,direction_id,block_id,shape_id,wheelchair_accessible
T4,WD_2024S,{V},Centraal Station,0,B4-01,T4_0,1
T4,WD_2024S,{V2},Heidepark,1,B4-01,T4_1,1
T4,WD_2024S,{V3},Centraal Station,0,B4-02,T4_0,1
T4,WD_2024S,{V4},Heidepark,1,B4-02,T4_1,1
B12,WD_2024S,{V5},Ziekenhuis Oost,0,B12-07,B12_0,1
B12,WD_2024S,{V6},Station Zuid,1,B12-07,B12_1,1
B12,SA_2024S,{V7},Ziekenhuis Oost,0,B12-11,B12_0,1
R2,WD_2024S,{V8},Grensstad,0,R2-03,R2_0,1
R2,WD_2024S,{V9},Rhenvale Centraal,1,R2-03,R2_1,1
""",
    ),
    _t(
        "opendata/kong/kong.yaml",
        "h12_hex32",
        True,
        """
_format_version: "3.0"
services:
  - name: gtfs-rt
    url: http://gtfs-rt.opendata.svc.cluster.local:8080
    routes:
      - name: gtfs-rt-route
        paths: ["/gtfs-rt"]
    plugins:
      - name: key-auth
        config: { key_names: ["apikey"], hide_credentials: true }
      - name: rate-limiting
        config: { minute: 120, policy: local }
consumers:
  - username: ov-reisplanner-partner
    keyauth_credentials:
      - key: {V}
  - username: universiteit-mobiliteitslab
    keyauth_credentials:
      - key: {V2}
""",
    ),
    _t(
        "opendata/openapi/opendata.yaml",
        "h12_placeholder",
        False,
        """
openapi: 3.0.3
info:
  title: RRTA Open Data API
  version: 1.4.0
  description: Real-time vehicle positions, trip updates and service alerts (GTFS-RT).
servers:
  - url: https://opendata.rhenvale-mobiel.eu
components:
  securitySchemes:
    apiKey:
      type: apiKey
      in: header
      name: apikey
      description: Request a key at https://opendata.rhenvale-mobiel.eu/aanvragen
  parameters:
    ApiKeyExample:
      name: apikey
      in: header
      example: "{V}"
security:
  - apiKey: []
""",
    ),
    _t(
        "opendata/pollers/gtfs_rt_poller.py",
        "h12_hex32",
        True,
        """
\"\"\"Polls the neighbouring operator's GTFS-RT feed (through their Azure API Management).\"\"\"
import time

import requests
from google.transit import gtfs_realtime_pb2

FEED_URL = "https://api.grensvervoer.eu/gtfs-rt/v1/tripupdates"
HEADERS = {"Ocp-Apim-Subscription-Key": "{V}"}


def poll() -> gtfs_realtime_pb2.FeedMessage:
    resp = requests.get(FEED_URL, headers=HEADERS, timeout=10)
    resp.raise_for_status()
    feed = gtfs_realtime_pb2.FeedMessage()
    feed.ParseFromString(resp.content)
    return feed


while True:
    print(len(poll().entity), "entities")
    time.sleep(30)
""",
    ),
    _t(
        "opendata/apim/subscriptions.md",
        "h12_uuid",
        False,
        """
# Open data API - APIM subscriptions (overview)

Keys themselves are never listed here; partners see their key in the developer portal.

| Partner                     | Product      | Subscription id | State  |
|-----------------------------|--------------|-----------------|--------|
| OV-reisplanner              | gtfs-rt-full | {V}             | active |
| Universiteit mobiliteitslab | gtfs-rt-lite | {V2}            | active |
| Gemeente Grensstad          | alerts-only  | {V3}            | active |
| Hackathon 2023              | gtfs-rt-lite | {V4}            | revoked |

Owner: team Open Data (opendata@rrta.eu)
""",
    ),
    _t(
        "opendata/README.md",
        "h12_placeholder",
        False,
        """
# RRTA Open Data

Real-time data for Rhenvale buses, trams and regional trains.

## Quick start

1. Request a free key at https://opendata.rhenvale-mobiel.eu/aanvragen.
2. Call the API with the key in the `apikey` header:

```sh
curl -H "apikey: {V}" https://opendata.rhenvale-mobiel.eu/gtfs-rt/vehiclepositions
```

Rate limit: 120 requests per minute. Licence: CC0.
""",
    ),
    # ================================================================ data platform
    _t(
        "dataplatform/notebooks/ingest/avl_history_backfill.py",
        "h12_databricks",
        True,
        """
# Databricks notebook source
# MAGIC %md
# MAGIC # AVL history backfill (one-off, Velocore Data)
# MAGIC Copies positions from the old Postgres history DB into the bronze layer.

# COMMAND ----------

import requests

WORKSPACE = "https://adb-4417205539128812.12.azuredatabricks.net"
TOKEN = "{V}"

# COMMAND ----------

resp = requests.post(
    f"{WORKSPACE}/api/2.1/jobs/run-now",
    headers={"Authorization": f"Bearer {TOKEN}"},
    json={"job_id": 918273, "notebook_params": {"from": "2023-01-01", "to": "2023-12-31"}},
    timeout=30,
)
print(resp.json())
""",
    ),
    _t(
        "dataplatform/notebooks/ingest/fare_taps_bronze.py",
        "h12_ref_py",
        False,
        """
# Databricks notebook source
# MAGIC %md
# MAGIC # Fare taps -> bronze

# COMMAND ----------

sf_options = {
    "sfUrl": "rrta-dwh.west-europe.azure.snowflakecomputing.com",
    "sfUser": "dwh_loader",
    "sfPassword": {V},
    "sfDatabase": "RAW",
    "sfSchema": "FARE",
    "sfWarehouse": "LOAD_WH",
}

# COMMAND ----------

df = spark.read.format("delta").load("abfss://landing@stdatarrta.dfs.core.windows.net/fare/taps")
df.write.format("snowflake").options(**sf_options).option("dbtable", "TAPS").mode("append").save()
""",
    ),
    _t(
        "dataplatform/dbt/profiles.yml",
        "h12_pw",
        True,
        """
rrta_dwh:
  target: dev
  outputs:
    dev:
      type: snowflake
      account: rrta-dwh.west-europe.azure
      user: VELOCORE_DEV
      password: "{V}"
      role: TRANSFORMER_DEV
      database: ANALYTICS_DEV
      warehouse: TRANSFORM_WH
      schema: dbt_velocore
      threads: 8
      client_session_keep_alive: false
""",
    ),
    _t(
        "dataplatform/dbt/ci/profiles.yml",
        "h12_ref_dbt",
        False,
        """
rrta_dwh:
  target: ci
  outputs:
    ci:
      type: snowflake
      account: rrta-dwh.west-europe.azure
      user: DBT_CI
      password: "{V}"
      role: TRANSFORMER_CI
      database: ANALYTICS_CI
      warehouse: CI_WH
      schema: "pr_{{ env_var('CI_MERGE_REQUEST_IID', 'local') }}"
      threads: 4
""",
    ),
    _t(
        "dataplatform/snowflake/keys/dwh_loader_rsa_key.p8",
        "h12_pkcs8_rsa",
        True,
        """
{V}
""",
    ),
    _t(
        "dataplatform/snowflake/admin/V12__dwh_loader_keypair.sql",
        "h12_rsa_pub_b64",
        False,
        """
-- Switch the loader service user to key-pair authentication.
-- The value below is the PUBLIC key (openssl rsa -pubout); the private key
-- is stored in Key Vault as snowflake-dwh-loader-p8.
USE ROLE SECURITYADMIN;

ALTER USER DWH_LOADER SET RSA_PUBLIC_KEY = '{V}';
ALTER USER DWH_LOADER UNSET PASSWORD;

DESC USER DWH_LOADER;
-- check RSA_PUBLIC_KEY_FP matches the fingerprint in docs/snowflake-keys.md
SHOW GRANTS TO USER DWH_LOADER;
""",
    ),
    _t(
        "dataplatform/airflow/airflow.cfg",
        "h12_fernet",
        True,
        """
[core]
dags_folder = /opt/airflow/dags
executor = CeleryExecutor
load_examples = False
# used to encrypt connection passwords in the metadata DB
fernet_key = {V}
parallelism = 32

[database]
sql_alchemy_conn = postgresql+psycopg2://airflow@pg-airflow.rrta.local:5432/airflow

[webserver]
base_url = https://airflow.data.rrta.internal
expose_config = False

[celery]
worker_concurrency = 8
""",
    ),
    _t(
        "dataplatform/airflow/.env",
        "h12_url_pw",
        True,
        """
AIRFLOW_UID=50000
AIRFLOW__CORE__EXECUTOR=CeleryExecutor
AIRFLOW__CORE__LOAD_EXAMPLES=False
AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://airflow:{V}@pg-airflow.rrta.local:5432/airflow
AIRFLOW__CELERY__BROKER_URL=redis://:{V2}@redis-airflow.rrta.local:6379/0
AIRFLOW_CONN_SNOWFLAKE_DWH=snowflake://DWH_LOADER:{V3}@/ANALYTICS?account=rrta-dwh&warehouse=LOAD_WH&role=LOADER
AIRFLOW_CONN_AVL_HISTORY=postgres://avl_reader:{V4}@pg-avl-history.rrta.local:5432/avl
AIRFLOW__WEBSERVER__BASE_URL=https://airflow.data.rrta.internal
AIRFLOW__WEBSERVER__EXPOSE_CONFIG=False
AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL=60
""",
    ),
    _t(
        "dataplatform/airflow/dags/gtfs_publish.py",
        "h12_ref_py",
        False,
        """
\"\"\"Nightly: build the GTFS feed from the planning export and publish it.\"\"\"
from datetime import datetime

from airflow import DAG
from airflow.models import Variable
from airflow.hooks.base import BaseHook
from airflow.operators.bash import BashOperator

with DAG("gtfs_publish", start_date=datetime(2024, 1, 1), schedule="30 3 * * *", catchup=False):
    api_key = {V}
    BashOperator(
        task_id="publish",
        bash_command="gtfs/scripts/publish_gtfs.sh",
        env={"NAP_API_KEY": api_key, "FEED_DIR": "/data/gtfs/build"},
    )
""",
    ),
    _t(
        "dataplatform/airflow/docs/local-setup.md",
        "h12_doc_host_pw",
        False,
        """
# Local Airflow setup

For local development we use the compose stack in `dev/`. Connections are
defined with example hosts only, so nothing here points at RRTA systems:

```sh
export AIRFLOW_CONN_SNOWFLAKE_DWH='snowflake://analyst:{V}@/ANALYTICS?account=example&warehouse=DEV_WH'
export AIRFLOW_CONN_AVL_HISTORY='postgres://avl_reader:{V2}@db.example.com:5432/avl'
export AIRFLOW_CONN_NAP='http://nap:{V3}@nap.example.invalid'
airflow connections list
```

Ask the data platform team for a real sandbox account.
""",
    ),
    _t(
        "dataplatform/notebooks/analysis/crowding_2024q1.ipynb",
        "h12_pw",
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
    "import snowflake.connector\\n",
    "conn = snowflake.connector.connect(\\n",
    "    account='rrta-dwh.west-europe.azure', user='M.JANSEN', password='{V}',\\n",
    "    warehouse='ADHOC_WH', database='ANALYTICS', schema='AVL')\\n",
    "df = conn.cursor().execute('select * from crowding_daily').fetch_pandas_all()"
   ]
  }
 ],
 "metadata": {
  "kernelspec": { "display_name": "Python 3", "language": "python", "name": "python3" }
 },
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
    ),
    _t(
        "dataplatform/notebooks/analysis/refund_claims.ipynb",
        "h12_fare_card",
        False,
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
      "top refund claimants (card number, claims):\\n",
      "{V}    14\\n",
      "{V2}    11\\n",
      "{V3}     9\\n"
     ]
    }
   ],
   "source": ["claims.groupby('card_number').size().nlargest(3)"]
  }
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
    ),
    _t(
        "dataplatform/tests/conftest.py",
        "h12_doc_storage_key",
        False,
        """
\"\"\"Test fixtures: run the blob tests against Azurite, the local Azure Storage emulator.
The account key below is the fixed, publicly documented Azurite/emulator key.\"\"\"
import pytest
from azure.storage.blob import BlobServiceClient

AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "{V}"
AZURITE_URL = f"http://127.0.0.1:10000/{AZURITE_ACCOUNT}"


@pytest.fixture()
def blob_service() -> BlobServiceClient:
    return BlobServiceClient(account_url=AZURITE_URL, credential=AZURITE_KEY)


@pytest.fixture()
def landing(blob_service: BlobServiceClient):
    container = blob_service.create_container("landing-test")
    yield container
    container.delete_container()
""",
    ),
    _t(
        "dataplatform/.databrickscfg",
        "h12_databricks",
        True,
        """
[DEFAULT]
host = https://adb-4417205539128812.12.azuredatabricks.net
token = {V}

[acc]
host = https://adb-7300918273645501.1.azuredatabricks.net
token = {V2}

[prod-readonly]
host = https://adb-4417205539128812.12.azuredatabricks.net
auth_type = azure-cli
#
""",
    ),
    _t(
        "dataplatform/jobs/crowding_model.json",
        "h12_cluster_id",
        False,
        """
{
  "name": "crowding-model-nightly",
  "tasks": [
    {
      "task_key": "features",
      "existing_cluster_id": "{V}",
      "notebook_task": { "notebook_path": "/Repos/data/rrta/notebooks/features/crowding" }
    },
    {
      "task_key": "train",
      "depends_on": [{ "task_key": "features" }],
      "existing_cluster_id": "{V2}",
      "notebook_task": { "notebook_path": "/Repos/data/rrta/notebooks/models/crowding_train" }
    }
  ],
  "schedule": { "quartz_cron_expression": "0 0 4 * * ?", "timezone_id": "Europe/Amsterdam" }
}
""",
    ),
    _t(
        "dataplatform/.gitlab-ci.yml",
        "h12_dbt_token",
        True,
        """
stages: [lint, test, deploy]

variables:
  DBT_CLOUD_ACCOUNT_ID: "70403"
  DBT_CLOUD_JOB_ID: "418222"
  DBT_CLOUD_API_TOKEN: "{V}"

sqlfluff:
  stage: lint
  image: python:3.11
  script:
    - pip install sqlfluff sqlfluff-templater-dbt
    - sqlfluff lint dbt/models

trigger-dbt-cloud:
  stage: deploy
  image: curlimages/curl:8.7.1
  script:
    - 'curl -sf -X POST -H "Authorization: Token $DBT_CLOUD_API_TOKEN" "https://emea.dbt.com/api/v2/accounts/$DBT_CLOUD_ACCOUNT_ID/jobs/$DBT_CLOUD_JOB_ID/run/" -d cause=gitlab'
  rules:
    - if: $CI_COMMIT_BRANCH == "main"
""",
    ),
    _t(
        "dataplatform/adf/linkedService/ls_landing_blob.json",
        "h12_azure_storage_key",
        True,
        """
{
  "name": "ls_landing_blob",
  "properties": {
    "type": "AzureBlobStorage",
    "annotations": ["velocore"],
    "typeProperties": {
      "connectionString": "DefaultEndpointsProtocol=https;AccountName=stdatarrta;AccountKey={V};EndpointSuffix=core.windows.net"
    },
    "connectVia": {
      "referenceName": "AutoResolveIntegrationRuntime",
      "type": "IntegrationRuntimeReference"
    }
  }
}
""",
    ),
    _t(
        "dataplatform/adf/linkedService/ls_scada_historian.json",
        "h12_kv_secret_name",
        False,
        """
{
  "name": "ls_scada_historian",
  "properties": {
    "type": "SqlServer",
    "typeProperties": {
      "connectionString": "Integrated Security=False;Data Source=hist01.scada.rrta.local;Initial Catalog=Historian;User ID=adf_reader",
      "password": {
        "type": "AzureKeyVaultSecret",
        "store": { "referenceName": "ls_keyvault_prod", "type": "LinkedServiceReference" },
        "secretName": "{V}"
      }
    },
    "connectVia": { "referenceName": "shir-depot-noord", "type": "IntegrationRuntimeReference" }
  }
}
""",
    ),
    _t(
        "dataplatform/docs/exports/revenue-share-partners.md",
        "h12_sas_sig",
        True,
        """
# Monthly revenue-share export for concession partners

The export job writes `revenue_share_<yyyymm>.csv` to the `exports` container.
Partners download it with this read-only link (valid until end of 2026):

https://stdatarrta.blob.core.windows.net/exports?sv=2022-11-02&ss=b&srt=co&sp=rl&se=2026-12-31T23:59:59Z&st=2024-01-01T00:00:00Z&spr=https&sig={V}

Questions: data platform team (Velocore Data) via #data-platform.
If the link leaks, rotate key1 of stdatarrta (this invalidates the link).
Next review of this arrangement: Q1 2025 (contract renewal).
""",
    ),
    # ================================================================ Azure and on-prem infrastructure
    _t(
        "infra/terraform/envs/prod/terraform.tfvars",
        "h12_azure_client_secret",
        True,
        """
# prod environment - Azure landing zone for RRTA workloads
subscription_id = "0c6d2f1e-7b3a-4c59-9e18-2d4f6a8b0c13"
tenant_id       = "8e1b3c5d-2f4a-4b6c-8d0e-1f3a5c7e9b2d"
client_id       = "5a7c9e1b-3d5f-4a8c-b0e2-4f6a8c0e2b4d"
client_secret   = "{V}"

location            = "westeurope"
resource_group_name = "rg-rrta-prod"
environment         = "prod"

tags = {
  owner       = "platform-team"
  cost_center = "IT-4100"
}
""",
    ),
    _t(
        "infra/terraform/envs/prod/providers.tf",
        "h12_ref_tf",
        False,
        """
terraform {
  required_providers {
    azurerm = { source = "hashicorp/azurerm", version = "~> 3.105" }
    random  = { source = "hashicorp/random", version = "~> 3.6" }
  }
  backend "azurerm" {}
}

resource "azurerm_mssql_server" "fare" {
  name                         = "sql-rrta-fare"
  resource_group_name          = var.resource_group_name
  location                     = var.location
  version                      = "12.0"
  administrator_login          = "sqladmin"
  administrator_login_password = {V}
  minimum_tls_version          = "1.2"
}
""",
    ),
    _t(
        "infra/terraform/vsphere/depot-vms/provider.tf",
        "h12_pw",
        True,
        """
provider "vsphere" {
  user                 = "svc-terraform@vsphere.local"
  password             = "{V}"
  vsphere_server       = "vcsa01.rrta.local"
  allow_unverified_ssl = true
}

data "vsphere_datacenter" "dc" {
  name = "DC-Depot-Noord"
}

data "vsphere_datastore" "ds" {
  name          = "vsan-depot-noord"
  datacenter_id = data.vsphere_datacenter.dc.id
}
""",
    ),
    _t(
        "infra/terraform/vsphere/depot-vms/.terraform.lock.hcl",
        "h12_tf_hash",
        False,
        """
# This file is maintained automatically by "terraform init".
# Manual edits may be lost in future updates.

provider "registry.terraform.io/hashicorp/vsphere" {
  version     = "2.8.1"
  constraints = "~> 2.8"
  hashes = [
    "{V}",
    "{V2}",
    "{V3}",
  ]
}
""",
    ),
    _t(
        "infra/ansible/inventories/depot/group_vars/all/vars.yml",
        "h12_pw",
        True,
        """
---
# depot infrastructure (on-prem VMware)
vcenter_hostname: vcsa01.rrta.local
vcenter_username: administrator@vsphere.local
vcenter_password: "{V}"
vcenter_validate_certs: false

depot_dns_servers:
  - 10.40.0.10
  - 10.40.0.11
depot_ntp_servers:
  - ntp1.rrta.local
  - ntp2.rrta.local
yard_manager_version: 7.3.2
""",
    ),
    _t(
        "infra/ansible/inventories/depot/group_vars/all/vault.yml",
        "h12_ansible_vault",
        False,
        """
---
# encrypted with ansible-vault (vault id: depot); view with
#   ansible-vault view --vault-id depot@prompt group_vars/all/vault.yml
vault_vcenter_password: !vault |
  {IV}
vault_yard_db_password: !vault |
  {IV2}
""",
    ),
    _t(
        "infra/ansible/roles/base/defaults/main.yml",
        "h12_sha512crypt",
        False,
        """
---
# local break-glass admin on every depot server; the value is a sha512-crypt hash
# (generated with: mkpasswd -m sha-512), the password itself is in the vault.
base_breakglass_user: rrta-local
base_breakglass_password_hash: "{V}"
base_breakglass_groups:
  - wheel
base_ssh_port: 22
base_packages:
  - chrony
  - rsyslog
  - auditd
base_timezone: Europe/Amsterdam
""",
    ),
    _t(
        "infra/ansible/inventories/depot/hosts.ini",
        "h12_weak_pw",
        True,
        """
[yard_servers]
yard01.depot-noord.rrta.local
yard01.depot-zuid.rrta.local

[pid_controllers]
pidctl01.depot-noord.rrta.local

[scada_gateways]
scgw01.rrta.local ansible_user=scada ansible_become_pass={V}

[all:vars]
ansible_user=ansible
ansible_python_interpreter=/usr/bin/python3
ansible_ssh_common_args='-o ProxyJump=jump01.rrta.local'
""",
    ),
    _t(
        "infra/ansible/inventories/depot-zuid/hosts.ini",
        "h12_ref_tmpl",
        False,
        """
[yard_servers]
yard01.depot-zuid.rrta.local

[pid_controllers]
pidctl01.depot-zuid.rrta.local

[scada_gateways]
scgw02.rrta.local ansible_user=scada ansible_become_pass="{V}"

[all:vars]
ansible_user=ansible
ansible_python_interpreter=/usr/bin/python3
ansible_ssh_common_args='-o ProxyJump=jump01.rrta.local'
""",
    ),
    _t(
        "infra/powercli/Snapshot-DepotVMs.ps1",
        "h12_pw",
        True,
        """
<#
.SYNOPSIS
  Takes a pre-patch snapshot of all depot VMs (run before the monthly patch window).
#>
Import-Module VMware.PowerCLI
Set-PowerCLIConfiguration -InvalidCertificateAction Ignore -Confirm:$false | Out-Null

Connect-VIServer -Server vcsa01.rrta.local -User 'svc-snapshots@vsphere.local' -Password '{V}'

$vms = Get-VM -Location (Get-Folder 'Depot') | Where-Object PowerState -eq 'PoweredOn'
foreach ($vm in $vms) {
    New-Snapshot -VM $vm -Name "prepatch-$(Get-Date -Format yyyyMMdd)" -Memory:$false -Quiesce:$true
    Write-Host "snapshot taken: $($vm.Name)"
}
Disconnect-VIServer -Confirm:$false
""",
    ),
    _t(
        "infra/powercli/Remove-OldSnapshots.ps1",
        "h12_ref_ps",
        False,
        """
<#
.SYNOPSIS
  Removes depot VM snapshots older than 7 days.
#>
param([int]$MaxAgeDays = 7)

Import-Module VMware.PowerCLI
$cred = Get-StoredCredential -Target 'vcsa01-snapshots'
$password = {V}
Connect-VIServer -Server vcsa01.rrta.local -User 'svc-snapshots@vsphere.local' -Password $password

Get-VM -Location (Get-Folder 'Depot') | Get-Snapshot |
    Where-Object { $_.Created -lt (Get-Date).AddDays(-$MaxAgeDays) } |
    Remove-Snapshot -Confirm:$false
Disconnect-VIServer -Confirm:$false
""",
    ),
    _t(
        "infra/bicep/scada-dmz/main.prod.bicepparam",
        "h12_pw",
        True,
        """
using './main.bicep'

param location = 'westeurope'
param environment = 'prod'
param vnetAddressPrefix = '10.62.0.0/22'
param jumpVmSize = 'Standard_B2ms'
param jumpAdminUsername = 'rrtaadmin'
param jumpAdminPassword = '{V}'
param allowedSourceRanges = [
  '194.0.42.0/24'
]
param tags = {
  owner: 'ot-security'
}
""",
    ),
    _t(
        "infra/bicep/scada-dmz/main.acc.bicepparam",
        "h12_kv_secret_name",
        False,
        """
using './main.bicep'

param location = 'westeurope'
param environment = 'acc'
param vnetAddressPrefix = '10.63.0.0/22'
param jumpVmSize = 'Standard_B2ms'
param jumpAdminUsername = 'rrtaadmin'
param jumpAdminPassword = az.getSecret('0c6d2f1e-7b3a-4c59-9e18-2d4f6a8b0c13', 'rg-rrta-acc', 'kv-rrta-acc', '{V}')
param allowedSourceRanges = [
  '194.0.42.0/24'
]
param tags = {
  owner: 'ot-security'
}
""",
    ),
    _t(
        "infra/scripts/upload-timetable-export.sh",
        "h12_azure_storage_key",
        True,
        """
#!/usr/bin/env bash
# Uploads the nightly timetable export from the planning server to blob storage.
set -euo pipefail

EXPORT_DIR=/srv/planning/export
ACCOUNT=stplanningrrta
CONTAINER=timetable-exports

for f in "$EXPORT_DIR"/*.xml; do
  az storage blob upload \\
    --account-name "$ACCOUNT" \\
    --account-key "{V}" \\
    --container-name "$CONTAINER" \\
    --file "$f" --name "$(date +%Y/%m/%d)/$(basename "$f")" --overwrite
done
""",
    ),
    _t(
        "infra/scripts/rotate-sql-admin.sh",
        "h12_ref_shell",
        False,
        """
#!/usr/bin/env bash
# Rotates the SQL admin password of the fare server; the new value is generated and
# stored in Key Vault by the rotation function, this script only applies it.
set -euo pipefail

SERVER=sql-rrta-fare
RG=rg-rrta-prod
NEW_PASSWORD={V}

az sql server update --name "$SERVER" --resource-group "$RG" \\
  --admin-password "$NEW_PASSWORD" --output none
echo "admin password of $SERVER rotated at $(date -Iseconds)"
""",
    ),
    _t(
        "infra/k8s/avl/registry-secret.yaml",
        "h12_basic_b64",
        True,
        """
apiVersion: v1
kind: Secret
metadata:
  name: acr-pull
  namespace: avl
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: |
    {
      "auths": {
        "acrrrta.azurecr.io": {
          "auth": "{V}"
        }
      }
    }
""",
    ),
    _t(
        "infra/k8s/avl/deployment.yaml",
        "h12_image_digest",
        False,
        """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: avl-bridge
  namespace: avl
spec:
  replicas: 2
  selector:
    matchLabels: { app: avl-bridge }
  template:
    metadata:
      labels: { app: avl-bridge }
    spec:
      imagePullSecrets:
        - name: acr-pull
      containers:
        - name: avl-bridge
          image: acrrrta.azurecr.io/avl/avl-bridge@{V}
          envFrom:
            - secretRef: { name: avl-bridge-mqtt }
""",
    ),
    _t(
        "infra/k8s/ticketing/secret.enc.yaml",
        "h12_sops",
        False,
        """
apiVersion: v1
kind: Secret
metadata:
  name: fare-service
  namespace: ticketing
type: Opaque
stringData:
  TICKETING_DB_PASSWORD: {V}
  CARDHUB_API_KEY: {V2}
sops:
  azure_kv:
    - vault_url: https://kv-rrta-prod.vault.azure.net
      name: sops-ticketing
      version: 3f8b2a9c4d1e4f6a8b0c2d4e6f8a0b1c
  lastmodified: "2024-05-02T09:41:17Z"
  version: 3.8.1
""",
    ),
    _t(
        "infra/k8s/itsm-bridge/secret.yaml",
        "h12_servicenow_secret",
        True,
        """
apiVersion: v1
kind: Secret
metadata:
  name: itsm-bridge
  namespace: itsm
  labels:
    app.kubernetes.io/name: itsm-bridge
type: Opaque
stringData:
  SERVICENOW_INSTANCE: rrta.service-now.com
  SERVICENOW_CLIENT_ID: 9f3c0a7e5b1d4c2e8a6f0b4d2c8e1a3f
  SERVICENOW_CLIENT_SECRET: "{V}"
  SERVICENOW_USERNAME: itsm.integration
""",
    ),
    _t(
        "infra/docs/handover/acr.md",
        "h12_acr_pw",
        True,
        """
# Container registry hand-over (Tessaline -> RRTA platform team)

Registry: `acrrrta.azurecr.io` (Premium, westeurope)

The admin user is still enabled because the old Jenkins on `build02` pulls with it.
Until Jenkins is gone:

- username: `acrrrta`
- password: `{V}`

Action items:
1. migrate Jenkins to a scoped token (repository `legacy/*`, pull only)
2. disable the admin user (`az acr update -n acrrrta --admin-enabled false`)
3. regenerate both admin passwords afterwards
""",
    ),
    _t(
        "infra/vault/agent/scada-exporter.env",
        "h12_vault_token",
        True,
        """
# systemd EnvironmentFile for the SCADA metrics exporter (hist01)
VAULT_ADDR=https://vault.rrta.local:8200
VAULT_NAMESPACE=ot
VAULT_TOKEN={V}
EXPORTER_LISTEN=0.0.0.0:9410
EXPORTER_HISTORIAN=hist01.scada.rrta.local
EXPORTER_POLL_SECONDS=15
EXPORTER_LOG_LEVEL=info
# token created 2024-03-11 by m.peeters, period 768h, policy scada-exporter
#
""",
    ),
    _t(
        "infra/vault/agent/yard-sync.env",
        "h12_approle_secret",
        True,
        """
# systemd EnvironmentFile for yard-sync (AppRole login against on-prem Vault)
VAULT_ADDR=https://vault.rrta.local:8200
VAULT_NAMESPACE=ot
VAULT_ROLE_ID=4b8e2d6a-1c3f-4e5a-9b7d-0f2e4c6a8b1d
VAULT_SECRET_ID={V}
YARD_DB_PATH=secret/data/depot/yard-db
YARD_SYNC_INTERVAL=60
YARD_SYNC_LOG_LEVEL=info
#
# secret_id issued 2024-04-02, no TTL (to be fixed, see OT-1182)
""",
    ),
    _t(
        "infra/vault/policies/yard-sync.md",
        "h12_uuid",
        False,
        """
# yard-sync: Vault AppRole

| Setting            | Value |
|--------------------|-------|
| role name          | yard-sync |
| role_id (public)   | {V} |
| policies           | yard-sync-read |
| secret_id_ttl      | 720h |
| token_ttl          | 1h |

The role_id is not secret (it is like a username). The secret_id is delivered by
the Ansible role `vault_approle` straight into `/etc/yard-sync/secret_id` and is never
written to Git or to this page.
""",
    ),
    _t(
        "infra/ansible/roles/jump/files/id_rsa_ansible",
        "h12_rsa_pem",
        True,
        """
{V}
""",
    ),
    _t(
        "infra/nginx/tls/opendata.chain.pem",
        "h12_cert",
        False,
        """
subject=C = NL, O = Rhenvale Regional Transport Authority, CN = opendata.rhenvale-mobiel.eu
issuer=C = US, O = Let's Encrypt, CN = R11
notBefore=May  2 07:11:04 2024 GMT
notAfter=Jul 31 07:11:03 2024 GMT
{V}
subject=C = US, O = Let's Encrypt, CN = R11
issuer=C = US, O = Internet Security Research Group, CN = ISRG Root X1
{V2}
""",
    ),
    _t(
        "infra/nginx/tls/opendata.key.enc",
        "h12_enc_pem",
        False,
        """
# PKCS#8 private key, encrypted (PBES2/AES-256-CBC). The passphrase is the Key Vault
# secret "opendata-tls-passphrase"; nginx reads it through ssl_password_file.
{V}
""",
    ),
    _t(
        "infra/pg/.pgpass",
        "h12_pw",
        True,
        """
# hostname:port:database:username:password
pg-avl-history.rrta.local:5432:avl:avl_reader:{V}
pg-avl-history.rrta.local:5432:avl:avl_sink:{V2}
pg-airflow.rrta.local:5432:airflow:airflow:{V3}
pg-gtfs.rrta.local:5432:gtfs:gtfs_pub:{V4}
pg-gtfs.rrta.local:5432:gtfs:gtfs_ro:{V5}
pg-yard.depot-noord.rrta.local:5432:yard:yard_app:{V6}
pg-yard.depot-zuid.rrta.local:5432:yard:yard_app:{V7}
pg-itsm.rrta.local:5432:bridge:itsm_bridge:{V8}
*:*:*:postgres:{V9}
# end
""",
    ),
    _t(
        "infra/terraform/envs/prod/backend.hcl",
        "h12_uuid",
        False,
        """
# azurerm backend for the prod state; authentication uses the pipeline's
# workload identity (OIDC), so no keys are stored here.
resource_group_name  = "rg-rrta-tfstate"
storage_account_name = "strrtatfstate"
container_name       = "tfstate"
key                  = "prod/landing-zone.tfstate"
subscription_id      = "{V}"
tenant_id            = "{V2}"
client_id            = "{V3}"
use_oidc             = true
use_azuread_auth     = true
""",
    ),
    _t(
        "infra/ops/.netrc",
        "h12_pw",
        True,
        """
machine nexus.rrta.local
  login deploy-ops
  password {V}

machine gitlab.rrta.eu
  login ops-bot
  password {V2}

machine api.cardhub.tessaline.eu
  login rrta-ops
  password {V3}
""",
    ),
    # ================================================================ SCADA and depot systems
    _t(
        "ot/scada/historian/historian.ini",
        "h12_pw",
        True,
        """
; Traction power historian collector (hist01.scada.rrta.local)
[collector]
poll_interval_ms = 1000
substations = UO-01,UO-02,UO-03,UO-07,UO-11
buffer_dir = E:\\Historian\\buffer

[sql]
server = hist01.scada.rrta.local\\HIST
database = Historian
user = hist_writer
password = {V}
encrypt = yes

[alarms]
forward_to = scada-alarms.rrta.local:6514
""",
    ),
    _t(
        "ot/scada/historian/opcua-trust.ini",
        "h12_sha1",
        False,
        """
; OPC UA server certificates trusted by the historian collector (SHA-1 thumbprints,
; as shown by the UA Configuration Tool). Thumbprints identify public certificates.
[trusted]
UO-01 = {V}
UO-02 = {V2}
UO-03 = {V3}
UO-07 = {V4}
UO-11 = {V5}

[rejected]
; old RTU firmware certificate, replaced 2024-02
UO-07-old = {V6}
""",
    ),
    _t(
        "ot/scada/opcua/Rrta.Traction.Collector.Config.xml",
        "h12_pw",
        True,
        """
<?xml version="1.0" encoding="utf-8"?>
<ApplicationConfiguration xmlns="http://opcfoundation.org/UA/SDK/Configuration.xsd">
  <ApplicationName>RRTA Traction Collector</ApplicationName>
  <ApplicationUri>urn:hist01:rrta:traction-collector</ApplicationUri>
  <ApplicationType>Client_1</ApplicationType>
  <Extensions>
    <CollectorSettings>
      <EndpointUrl>opc.tcp://uo-01.scada.rrta.local:4840</EndpointUrl>
      <SecurityPolicy>Basic256Sha256</SecurityPolicy>
      <UserName>scada_ro</UserName>
      <Password>{V}</Password>
      <PublishingIntervalMs>1000</PublishingIntervalMs>
    </CollectorSettings>
  </Extensions>
  <ClientConfiguration>
    <DefaultSessionTimeout>60000</DefaultSessionTimeout>
  </ClientConfiguration>
</ApplicationConfiguration>
""",
    ),
    _t(
        "ot/network/snmpd.conf",
        "h12_pw",
        True,
        """
# SNMPv3 for the substation RTU gateways (monitored by the OT Zabbix proxy)
agentAddress udp:161
sysLocation "Onderstation UO-03, Rhenvale"
sysContact ot-security@rrta.eu

createUser zbx-ot SHA-256 "{V}" AES "{V2}"
rouser zbx-ot priv

# no v1/v2c communities on OT devices
view systemonly included .1.3.6.1.2.1.1
view systemonly included .1.3.6.1.2.1.25.1
dontLogTCPWrappersConnects yes
""",
    ),
    _t(
        "ot/yard-manager/export/vehicles-depot-noord.csv",
        "h12_uuid",
        False,
        """
vehicle_uuid,fleet_number,type,track,status,next_inspection
{V},4401,TRAM-FLX,T03,ready,2024-06-02
{V2},4402,TRAM-FLX,T03,ready,2024-06-09
{V3},4417,TRAM-FLX,T17,inspection,2024-05-15
{V4},4420,TRAM-FLX,T05,ready,2024-06-21
{V5},2201,BUS-E12,B11,charging,2024-07-01
{V6},2202,BUS-E12,B11,charging,2024-07-01
{V7},2230,BUS-E18,B14,defect,2024-05-16
{V8},2231,BUS-E18,B14,ready,2024-06-30
{V9},2240,BUS-E18,B15,ready,2024-07-12
""",
    ),
    _t(
        "ot/jump/scada-jump.ppk",
        "h12_ppk",
        True,
        """
{V}
""",
    ),
    _t(
        "ot/scada/rtu-firmware/manifest.yml",
        "h12_sha256",
        False,
        """
# RTU gateway firmware approved for the substations (OT change board 2024-04)
firmware:
  vendor: substation-rtu
  model: RTU-560-GW
  version: 13.4.2
  file: rtu560gw-13.4.2.bin
  sha256: {V}
  signature_file: rtu560gw-13.4.2.bin.sig
  signature_sha256: {V2}
approved_by: ot-change-board
valid_for:
  - UO-01
  - UO-03
  - UO-07
""",
    ),
    _t(
        "ot/scada/tools/poll_substations.py",
        "h12_basic_b64",
        True,
        """
\"\"\"Polls the REST interface of the substation gateways and prints the feeder currents.\"\"\"
import requests

GATEWAYS = ["uo-01", "uo-03", "uo-07"]
HEADERS = {
    "Authorization": "Basic {V}",
    "Accept": "application/json",
}

for gw in GATEWAYS:
    url = f"https://{gw}.scada.rrta.local/api/v1/feeders"
    resp = requests.get(url, headers=HEADERS, timeout=5, verify="/etc/ssl/rrta-ot-ca.pem")
    resp.raise_for_status()
    for feeder in resp.json()["feeders"]:
        print(gw, feeder["id"], feeder["current_a"])
""",
    ),
    _t(
        "ot/scada/hmi/lang/fr.json",
        "h12_i18n",
        False,
        """
{
  "login": {
    "title": "Connexion opérateur",
    "user": "Identifiant",
    "password": "Mot de passe",
    "error": "{V}",
    "locked": "Compte verrouillé après 5 tentatives"
  },
  "feeder": {
    "open": "Ouvrir le départ",
    "close": "Fermer le départ",
    "confirm": "Confirmer la manœuvre"
  }
}
""",
    ),
    _t(
        "ot/depot-gates/badges-export.csv",
        "h12_card_uid",
        False,
        """
badge_uid,holder_role,depot,valid_from,valid_until
{V},driver,DN,2024-01-01,2024-12-31
{V2},driver,DN,2024-01-01,2024-12-31
{V3},technician,DN,2024-03-15,2025-03-14
{V4},technician,DZ,2024-02-01,2025-01-31
{V5},cleaning-contractor,DN,2024-05-01,2024-07-31
{V6},security,DN,2024-01-01,2024-12-31
{V7},visitor-pool,DN,2024-01-01,2024-12-31
{V8},visitor-pool,DZ,2024-01-01,2024-12-31
{V9},driver,DZ,2024-04-08,2025-04-07
""",
    ),
    _t(
        "ot/logging/splunk-forwarder/outputs.conf",
        "h12_splunk_hec",
        True,
        """
# Splunk HEC output for the OT syslog relay (scada-log01), managed by Ansible
[httpout]
httpEventCollectorToken = {V}
uri = https://hec.splunk.rrta.local:8088
batchSize = 65536
batchTimeout = 30

[tcpout]
disabled = true

# sourcetypes forwarded: rtu:syslog, historian:events, yard:audit
# index: ot_prod (token is bound to this index only)
""",
    ),
    # ================================================================ ITSM
    _t(
        "itsm/servicenow/script_includes/AvlIncidentBridge.js",
        "h12_pw",
        True,
        """
var AvlIncidentBridge = Class.create();
AvlIncidentBridge.prototype = {
    initialize: function() {
        this.endpoint = 'https://avl-gateway.rrta.internal/api/v1/incidents';
    },

    pushIncident: function(incidentGr) {
        var request = new sn_ws.RESTMessageV2();
        request.setEndpoint(this.endpoint);
        request.setHttpMethod('POST');
        request.setBasicAuth('itsm-bridge', '{V}');
        request.setRequestHeader('Content-Type', 'application/json');
        request.setRequestBody(JSON.stringify({ number: incidentGr.getValue('number') }));
        return request.execute().getStatusCode();
    },

    type: 'AvlIncidentBridge'
};
""",
    ),
    _t(
        "itsm/servicenow/script_includes/AvlVehicleLookup.js",
        "h12_ref_js",
        False,
        """
var AvlVehicleLookup = Class.create();
AvlVehicleLookup.prototype = {
    initialize: function() {
        this.endpoint = 'https://avl-gateway.rrta.internal/api/v1/vehicles/';
    },

    lookup: function(fleetNumber) {
        var request = new sn_ws.RESTMessageV2();
        request.setEndpoint(this.endpoint + fleetNumber);
        request.setHttpMethod('GET');
        request.setRequestHeader('X-Api-Token', {V});
        return JSON.parse(request.execute().getBody());
    },

    type: 'AvlVehicleLookup'
};
""",
    ),
    _t(
        "itsm/servicenow/update_sets/avl_ci_class.xml",
        "h12_sys_id",
        False,
        """
<?xml version="1.0" encoding="UTF-8"?>
<unload unload_date="2024-05-03 12:14:09">
  <sys_remote_update_set action="INSERT_OR_UPDATE">
    <name>RRTA AVL vehicle CI class</name>
    <sys_id>{V}</sys_id>
    <application display_value="Global">global</application>
    <parent/>
  </sys_remote_update_set>
  <sys_update_xml action="INSERT_OR_UPDATE">
    <name>sys_db_object_{V2}</name>
    <remote_update_set display_value="RRTA AVL vehicle CI class">{V}</remote_update_set>
    <sys_id>{V3}</sys_id>
    <type>Table</type>
  </sys_update_xml>
</unload>
""",
    ),
    _t(
        "itsm/jira/automation/close-stale-validator-tickets.sh",
        "h12_atlassian",
        True,
        """
#!/usr/bin/env bash
# Closes validator-fault tickets that have had no update for 30 days (run weekly by cron).
set -euo pipefail

JIRA=https://rrta.atlassian.net
AUTH="ops-automation@rrta.eu:{V}"
JQL='project = VAL AND status = "Waiting for parts" AND updated < -30d'

keys=$(curl -sf -u "$AUTH" -G "$JIRA/rest/api/3/search" \\
  --data-urlencode "jql=$JQL" --data-urlencode "fields=key" | jq -r '.issues[].key')

for key in $keys; do
  curl -sf -u "$AUTH" -X POST -H 'Content-Type: application/json' \\
    "$JIRA/rest/api/3/issue/$key/transitions" -d '{"transition":{"id":"61"}}'
  echo "closed $key"
done
""",
    ),
    _t(
        "itsm/jira/exports/VAL-2291.json",
        "h12_uuid",
        False,
        """
{
  "key": "VAL-2291",
  "fields": {
    "summary": "Validator 4417-B rejects DESFire cards after firmware 4.12.3",
    "status": { "name": "In progress" },
    "customfield_10420": "{V}",
    "customfield_10421": "4417-B",
    "labels": ["validator", "firmware", "tram"],
    "attachment": [
      { "id": "88213", "filename": "diag-bundle.tgz", "content": "https://rrta.atlassian.net/rest/api/3/attachment/content/88213" }
    ],
    "customfield_10500": { "traceId": "{V2}" }
  }
}
""",
    ),
    _t(
        "itsm/integrations/okta_sync.py",
        "h12_okta",
        True,
        """
\"\"\"Syncs contractor accounts from ServiceNow HR cases to Okta groups (nightly).\"\"\"
import requests

OKTA_ORG = "https://rrta.okta-emea.com"
OKTA_TOKEN = "{V}"
SESSION = requests.Session()
SESSION.headers.update({"Authorization": f"SSWS {OKTA_TOKEN}", "Accept": "application/json"})


def add_to_group(user_id: str, group_id: str) -> None:
    resp = SESSION.put(f"{OKTA_ORG}/api/v1/groups/{group_id}/users/{user_id}", timeout=10)
    resp.raise_for_status()


def contractors_group() -> str:
    resp = SESSION.get(f"{OKTA_ORG}/api/v1/groups", params={"q": "contractors"}, timeout=10)
    return resp.json()[0]["id"]
""",
    ),
    _t(
        "itsm/integrations/servicenow_client.py",
        "h12_ref_py",
        False,
        """
\"\"\"Thin ServiceNow Table API client used by the ITSM bridge.\"\"\"
import os

import keyring
import requests

INSTANCE = "https://rrta.service-now.com"


def session() -> requests.Session:
    s = requests.Session()
    s.auth = ("itsm.integration", {V})
    s.headers["Accept"] = "application/json"
    return s


def open_incidents(group: str) -> list[dict]:
    params = {"sysparm_query": f"active=true^assignment_group.name={group}"}
    return session().get(f"{INSTANCE}/api/now/table/incident", params=params).json()["result"]
""",
    ),
    # ================================================================ CI (Azure DevOps, GitLab)
    _t(
        "ticketing-dotnet/azure-pipelines.yml",
        "h12_ado_pat",
        True,
        """
trigger:
  branches:
    include: [main, release/*]

pool:
  vmImage: ubuntu-latest

variables:
  buildConfiguration: Release
  FEED_USER: tessaline-build
  FEED_PAT: {V}

steps:
  - task: UseDotNet@2
    inputs: { version: 8.0.x }
  - script: |
      dotnet nuget update source rrta-ticketing --username $(FEED_USER) --password $(FEED_PAT) --store-password-in-clear-text
      dotnet build --configuration $(buildConfiguration)
    displayName: build
  - script: dotnet test --no-build --configuration $(buildConfiguration)
    displayName: test
""",
    ),
    _t(
        "ticketing/azure-pipelines.yml",
        "h12_ref_ci",
        False,
        """
trigger:
  branches:
    include: [main]

pool:
  name: rrta-linux

variables:
  - group: ticketing-secrets   # linked to kv-rrta-prod

steps:
  - task: Gradle@3
    inputs:
      tasks: build
      options: -PrrtaArtifactsPassword={V}
  - task: SonarQubePrepare@5
    inputs:
      SonarQube: sonar-rrta
      scannerMode: Other
  - script: ./gradlew sonar -Dsonar.token=$(sonarToken)
    displayName: sonar
""",
    ),
    _t(
        "validator-fw/.gitlab-ci.yml",
        "h12_sonar",
        True,
        """
stages: [build, test, analyse, release]

variables:
  GIT_DEPTH: "0"
  SONAR_HOST_URL: "https://sonar.rrta.local"
  SONAR_TOKEN: "{V}"

build:
  stage: build
  image: registry.gitlab.rrta.eu/bramwick/fw-toolchain:14
  script:
    - cmake --preset release && cmake --build build/release
  artifacts:
    paths: [build/release/validator.bin]

sonar:
  stage: analyse
  image: sonarsource/sonar-scanner-cli:5
  script:
    - sonar-scanner -Dsonar.projectKey=validator-fw
""",
    ),
    _t(
        "tools/gtfs-kit/.gitlab-ci.yml",
        "h12_ref_ci",
        False,
        """
stages: [test, publish]

test:
  stage: test
  image: rust:1.78
  script:
    - cargo test --all

publish-crate:
  stage: publish
  image: rust:1.78
  script:
    - cargo publish --token "{V}"
  rules:
    - if: $CI_COMMIT_TAG

mirror:
  stage: publish
  script:
    - git push --mirror https://rrta-bot:${GITHUB_MIRROR_TOKEN}@github.com/rrta/gtfs-kit.git
""",
    ),
    _t(
        "ci/gitlab-runner/config.toml",
        "h12_gitlab_runner",
        True,
        """
concurrent = 4
check_interval = 0

[session_server]
  session_timeout = 1800

[[runners]]
  name = "runner-depot-noord-01"
  url = "https://gitlab.rrta.eu"
  id = 118
  token = "{V}"
  token_obtained_at = 2024-02-20T09:12:44Z
  executor = "docker"
  [runners.docker]
    image = "alpine:3.19"
    privileged = false
    volumes = ["/cache"]
""",
    ),
    _t(
        "ci/logs/validator-fw-pipeline-88213.log",
        "h12_redacted",
        False,
        """
Running with gitlab-runner 16.11.0 (91a27b2a)
  on runner-depot-noord-01 t3_Xq2
Preparing the "docker" executor
Using docker image registry.gitlab.rrta.eu/bramwick/fw-toolchain:14 ...
$ echo "signing with key password $RRTA_SIGNING_KEY_PASSWORD"
signing with key password {V}
$ curl --fail -u bramwick-ci:$NEXUS_PASSWORD --upload-file build/release/validator.bin ...
  % Total    % Received % Xferd  Average Speed   Time
100 2048k    0     0  100 2048k      0  8.1M  0:00:01 --:--:--
Authorization: Basic {V2}
Job succeeded
""",
    ),
    _t(
        "passenger-app/.npmrc",
        "h12_b64_pat",
        True,
        """
; npm config for the passenger app (React Native)
registry=https://registry.npmjs.org/
@rrta:registry=https://pkgs.dev.azure.com/rrta/_packaging/mobile/npm/registry/
always-auth=true

; begin auth token
//pkgs.dev.azure.com/rrta/_packaging/mobile/npm/registry/:username=rrta
//pkgs.dev.azure.com/rrta/_packaging/mobile/npm/registry/:_password={V}
//pkgs.dev.azure.com/rrta/_packaging/mobile/npm/registry/:email=npm requires email to be set but doesn't use the value
; end auth token
""",
    ),
    _t(
        "tools/gtfs-js/.npmrc",
        "h12_npm",
        True,
        """
# gtfs-js is published to npmjs as @rrta-opendata/gtfs-js
registry=https://registry.npmjs.org/
//registry.npmjs.org/:_authToken={V}
access=public
save-exact=true
engine-strict=true
fund=false
audit-level=high
# publish from the release branch only
git-tag-version=true
""",
    ),
    _t(
        "passenger-bff/.npmrc",
        "h12_ref_ci",
        False,
        """
# CI writes NPM_TOKEN into the job environment; npm expands ${...} at runtime.
registry=https://registry.npmjs.org/
@rrta:registry=https://pkgs.dev.azure.com/rrta/_packaging/mobile/npm/registry/
//pkgs.dev.azure.com/rrta/_packaging/mobile/npm/registry/:_authToken={V}
always-auth=true
save-exact=true
engine-strict=true
fund=false
audit-level=high
#
""",
    ),
    _t(
        "dataplatform/scripts/sync-dbt-docs.sh",
        "h12_gitlab",
        True,
        """
#!/usr/bin/env bash
# Publishes the generated dbt docs to the GitLab pages repo of the data team.
set -euo pipefail

cd "$(dirname "$0")/../dbt"
dbt docs generate --target prod

rm -rf /tmp/dbt-docs && git clone "https://oauth2:{V}@gitlab.rrta.eu/data/dbt-docs.git" /tmp/dbt-docs
cp -r target/index.html target/catalog.json target/manifest.json /tmp/dbt-docs/public/
cd /tmp/dbt-docs
git add -A && git commit -m "docs: $(date -I)" || exit 0
git push origin main
""",
    ),
    _t(
        "tools/gtfs-kit/scripts/mirror-to-github.sh",
        "h12_github",
        True,
        """
#!/usr/bin/env bash
# Mirrors the open-source GTFS tools from the internal GitLab to github.com/rrta.
set -euo pipefail

REPOS=(gtfs-kit gtfs-js gtfs-rt-validator-config)
GH_TOKEN="{V}"

for repo in "${REPOS[@]}"; do
  rm -rf "/tmp/$repo.git"
  git clone --mirror "https://gitlab.rrta.eu/opendata/$repo.git" "/tmp/$repo.git"
  git -C "/tmp/$repo.git" push --mirror "https://rrta-bot:$GH_TOKEN@github.com/rrta/$repo.git"
done
echo "mirrored ${#REPOS[@]} repositories"
""",
    ),
    _t(
        "tools/gtfs-kit/.github/release.env",
        "h12_github_fine",
        True,
        """
# Used by scripts/release.sh to create GitHub releases for gtfs-kit
GITHUB_OWNER=rrta
GITHUB_REPO=gtfs-kit
GITHUB_TOKEN={V}
RELEASE_DRAFT=false
RELEASE_PRERELEASE=false
CHANGELOG_FILE=CHANGELOG.md
ASSETS=target/dist/*.tar.gz
SIGN_ASSETS=true
#
""",
    ),
    _t(
        "passenger-bff/scripts/docker-login.sh",
        "h12_gitlab_deploy",
        True,
        """
#!/usr/bin/env sh
# Log the staging VM in to the GitLab container registry (read_registry deploy token).
set -eu

REGISTRY=registry.gitlab.rrta.eu
DEPLOY_USER=gitlab+deploy-token-42
DEPLOY_TOKEN={V}

echo "$DEPLOY_TOKEN" | docker login "$REGISTRY" -u "$DEPLOY_USER" --password-stdin
docker pull "$REGISTRY/mobile/passenger-bff:staging"
docker compose -f /opt/bff/compose.yml up -d
echo "staging updated"
""",
    ),
    _t(
        "ci/release-notes/2024-05-14.md",
        "h12_sha1",
        False,
        """
# Release train 2024-05-14

| Component        | Version | Commit |
|------------------|---------|--------|
| fare-service     | 3.18.0  | {V} |
| card-registry    | 2.9.1   | {V2} |
| journey-api      | 1.22.0  | {V3} |
| validator-fw     | 4.12.3  | {V4} |
| passenger-app    | 4.12.0  | {V5} |
| avl-bridge       | 2.7.1   | {V6} |

Rollback: redeploy the previous tag from the release pipeline.
""",
    ),
    _t(
        "ticketing-dotnet/build/publish-packages.ps1",
        "h12_nuget",
        True,
        """
<#
.SYNOPSIS
  Publishes the open-source Rrta.Gtfs.* packages to nuget.org.
#>
param([string]$Configuration = 'Release')

$ErrorActionPreference = 'Stop'
$apiKey = '{V}'

dotnet pack src/Rrta.Gtfs.Model -c $Configuration -o out
dotnet pack src/Rrta.Gtfs.Reader -c $Configuration -o out

Get-ChildItem out -Filter *.nupkg | ForEach-Object {
    dotnet nuget push $_.FullName --api-key $apiKey --source https://api.nuget.org/v3/index.json --skip-duplicate
}
""",
    ),
    _t(
        "tools/gtfs-py/.pypirc",
        "h12_pypi",
        True,
        """
[distutils]
index-servers =
    pypi
    rrta

[pypi]
username = __token__
password = {V}

[rrta]
repository = https://pkgs.dev.azure.com/rrta/_packaging/opendata/pypi/upload/
username = rrta
""",
    ),
    _t(
        "ci/templates/notify-teams.yml",
        "h12_teams_webhook",
        True,
        """
# Azure DevOps step template: post the release result to the Teams channel
parameters:
  - name: status
    type: string
    default: succeeded

steps:
  - bash: |
      curl -sf -H 'Content-Type: application/json' \\
        -d "{\\"text\\": \\"Release $(Build.BuildNumber) ${{ parameters.status }}\\"}" \\
        "{V}"
    displayName: notify Teams
    condition: always()
""",
    ),
    _t(
        "ci/templates/README.md",
        "h12_doc_webhook",
        False,
        """
# Pipeline templates

## notify-teams.yml

Posts a message to a Teams or Slack channel. Pass the webhook URL as a secret
pipeline variable; the URL in the example below is the documentation sample and
does not reach any channel.

```yaml
steps:
  - template: ci/templates/notify-teams.yml
    parameters:
      status: succeeded
      webhook: "{V}"
```
""",
    ),
    _t(
        "ops/alertmanager/alertmanager.yml",
        "h12_slack_webhook",
        True,
        """
global:
  resolve_timeout: 5m
  slack_api_url: "{V}"

route:
  receiver: slack-ops
  group_by: [alertname, cluster]
  routes:
    - matchers: [severity="page"]
      receiver: slack-ops

receivers:
  - name: slack-ops
    slack_configs:
      - channel: "#ops-alerts"
        send_resolved: true
        title: "{{ .CommonLabels.alertname }}"
""",
    ),
    _t(
        "ops/bots/disruption-bot/bot.py",
        "h12_slack_bot",
        True,
        """
\"\"\"Posts tram and bus disruptions from the AVL incident feed into #storingen.\"\"\"
import time

import requests
from slack_sdk import WebClient

SLACK_TOKEN = "{V}"
CHANNEL = "#storingen"
FEED = "https://avl-gateway.rrta.internal/api/v1/incidents?active=true"

client = WebClient(token=SLACK_TOKEN)
seen: set[str] = set()
while True:
    for incident in requests.get(FEED, timeout=10).json():
        if incident["id"] not in seen:
            client.chat_postMessage(channel=CHANNEL, text=incident["summary"])
            seen.add(incident["id"])
    time.sleep(60)
""",
    ),
    _t(
        "ops/bots/disruption-bot/test_bot.py",
        "h12_fake_marked",
        False,
        """
\"\"\"Unit tests for the disruption bot (Slack client is mocked).\"\"\"
from unittest import mock

import bot


def test_posts_new_incident_once():
    with mock.patch.object(bot, "WebClient") as web_client:
        client = web_client.return_value
        token = "{V}"
        bot.post_incidents(client, [{"id": "i-1", "summary": "Tram 4 gestremd"}], token=token)
        bot.post_incidents(client, [{"id": "i-1", "summary": "Tram 4 gestremd"}], token=token)
        assert client.chat_postMessage.call_count == 1


def test_channel_name():
    assert bot.CHANNEL == "#storingen"
""",
    ),
    # ================================================================ runbooks, wiki, chat, handover
    _t(
        "docs/runbooks/scada-historian-herstel.md",
        "h12_pw",
        True,
        """
# Runbook: herstel van de SCADA-historian (hist01)

**Eigenaar:** team OT-beheer  **Laatst bijgewerkt:** 14-05-2024

## Wanneer
De collector schrijft niet meer naar de database (alarm `HIST_BUFFER_FULL`).

## Stappen
1. Log in via de jump host `scada-jump01` (PuTTY-sessie "hist01").
2. Open SQL Server Management Studio en meld je aan op `hist01\\HIST`
   met account `hist_admin` en wachtwoord `{V}`.
3. Controleer of de transactielog vol is: `DBCC SQLPERF(LOGSPACE);`
4. Maak een logback-up naar `E:\\Backup\\log` en herstart de service
   `RRTA Traction Collector`.
5. Controleer in Grafana (dashboard "Tractie") dat de metingen weer binnenkomen.

Escalatie: storingsdienst OT, 24/7 via het meldnummer.
""",
    ),
    _t(
        "docs/runbooks/sql-admin-rotatie.md",
        "h12_redacted",
        False,
        """
# Runbook: rotatie van het SQL-beheerwachtwoord (sql-rrta-fare)

1. Start de pipeline `rotate-sql-admin` in Azure DevOps (handmatige trigger).
2. De pipeline genereert een nieuw wachtwoord en schrijft het naar Key Vault
   (`kv-rrta-prod`, secret `sql-fare-admin`).
3. Controleer de uitvoer van de stap "apply":

```
server:   sql-rrta-fare
login:    sqladmin
password: {V}
status:   updated
```

4. Herstart de fare-gateway pods zodat ze de nieuwe waarde ophalen.
""",
    ),
    _t(
        "docs/runbooks/vcenter-depot.md",
        "h12_kv_secret_name",
        False,
        """
# Runbook: vCenter depot cluster

| Item            | Value |
|-----------------|-------|
| URL             | https://vcsa01.rrta.local/ui |
| Admin account   | administrator@vsphere.local |
| Admin password  | Key Vault `kv-rrta-prod`, secret `{V}` |
| Break-glass     | sealed envelope in the safe at depot Noord |
| Support         | VMware SR via the platform team |

## Patch window
Second Tuesday of the month, 22:00-02:00. Take snapshots first
(`infra/powercli/Snapshot-DepotVMs.ps1`) and remove them after 7 days.
""",
    ),
    _t(
        "docs/wiki/Depot-Noord/Netzwerk.md",
        "h12_pw",
        True,
        """
# Depot Noord - Netzwerk (Übergabe Bramwick Embedded)

Stand: April 2024, erstellt von Bramwick für das RRTA-Betriebsteam.

## WLAN
- SSID `RRTA-DEPOT-IOT` (nur für Anzeigen, Uhren und Validatoren in der Werkstatt)
- WPA2-PSK, das Passwort lautet `{V}`
- VLAN 412, DHCP über pidctl01

## Managementzugang
- Switches: Zugriff nur über den Jump-Host `jump01.rrta.local`
- Konfigurationssicherung täglich nach `nexus.rrta.local/repository/netbackup`

Offene Punkte: PSK nach Abschluss der Übergabe ändern (Ticket OT-1190).
""",
    ),
    _t(
        "docs/wiki/Depot-Zuid/Netzwerk.md",
        "h12_placeholder",
        False,
        """
# Depot Zuid - Netzwerk

Stand: Mai 2024.

## WLAN
- SSID `RRTA-DEPOT-IOT`
- WPA2-Enterprise (EAP-TLS); für Altgeräte ohne Zertifikat gibt es
  ein separates PSK-Netz, Passwort: `{V}` (steht im Passwort-Tresor, Eintrag
  "Depot Zuid IoT-PSK")
- VLAN 422

## Managementzugang
- Switches nur über `jump01.rrta.local`
""",
    ),
    _t(
        "docs/handover/bramwick-passation-validateurs.fr.md",
        "h12_pw",
        True,
        """
# Passation - outillage des valideurs (Bramwick Embedded -> RRTA)

## Accès à transférer
- Dépôt GitLab `bramwick/validator-fw` : transfert du groupe vers `rrta/ot`.
- Serveur de diagnostic : compte de service `diag`, mot de passe : {V}
- Station de personnalisation 2 : session Windows locale `perso`.

## Points ouverts
1. Changer le mot de passe du compte `diag` après la passation.
2. Régénérer la clé de déploiement CI (`ci/deploy_key`).
3. Documenter la cérémonie des clés SAM (prochaine : septembre).

Contact : support@bramwick.example pour les questions techniques.
""",
    ),
    _t(
        "docs/handover/bramwick-passation-personnalisation.fr.md",
        "h12_placeholder",
        False,
        """
# Passation - station de personnalisation

## Configuration
Le fichier `station.ini` attend la clé d'authentification hôte du SAM :

```ini
[sam]
slot = 1
host_auth_key = {V}
```

La vraie valeur n'est jamais écrite dans ce document : elle est saisie pendant
la cérémonie des clés par deux porteurs de secret, puis stockée dans le HSM.
""",
    ),
    _t(
        "docs/slack-export/data-platform/2024-05-13.json",
        "h12_databricks",
        True,
        """
[
  {
    "type": "message",
    "user": "U05K2J9Q7LM",
    "text": "the backfill job keeps failing with 403, which token is the notebook using?",
    "ts": "1715592011.381209"
  },
  {
    "type": "message",
    "user": "U04R7T3N2PX",
    "text": "mine expired. use this one for now, I'll rotate it friday: {V}",
    "ts": "1715592144.902117"
  },
  {
    "type": "message",
    "user": "U05K2J9Q7LM",
    "text": "works, thanks :+1:",
    "ts": "1715592310.114902"
  }
]
""",
    ),
    _t(
        "docs/slack-export/ticketing/2024-05-14.json",
        "h12_sha1",
        False,
        """
[
  {
    "type": "message",
    "user": "U03N8D2K5WQ",
    "text": "fare-service 3.18.0 is on acc, built from {V}",
    "ts": "1715671201.000200"
  },
  {
    "type": "message",
    "user": "U02T6B9M1ZR",
    "text": "the hotfix for the zone rounding is {V2}, can you cherry-pick it onto release/3.18?",
    "ts": "1715671388.000300"
  },
  {
    "type": "message",
    "user": "U03N8D2K5WQ",
    "text": "done",
    "ts": "1715671420.000400"
  }
]
""",
    ),
    _t(
        "docs/slack-export/ops/2024-05-15.json",
        "h12_redacted",
        False,
        """
[
  {
    "type": "message",
    "user": "U02T6B9M1ZR",
    "text": "disruption bot is down, the token got revoked by the Slack admin",
    "ts": "1715760012.000100"
  },
  {
    "type": "message",
    "user": "U04R7T3N2PX",
    "text": "new bot token is in Key Vault as slack-disruption-bot (starts with xoxb-{V}), redeploying now",
    "ts": "1715760230.000200"
  },
  {
    "type": "message",
    "user": "U02T6B9M1ZR",
    "text": "thanks, back online",
    "ts": "1715760555.000300"
  }
]
""",
    ),
    _t(
        "docs/onboarding/contractors.md",
        "h12_weak_pw",
        True,
        """
# Onboarding for contractors (Tessaline, Bramwick, Nordhaven, Velocore)

Welcome! Your account is created by the service desk within two working days.

## First login
Test environments share these starter accounts until your personal account exists:

| Environment      | User          | Password |
|------------------|---------------|----------|
| back-office acc  | contractor01  | {V} |
| journey-api acc  | tester        | {V2} |
| yard-manager acc | yard_test     | {V3} |

## VPN
Install the Always On VPN profile from the company portal.
""",
    ),
    _t(
        "docs/onboarding/nieuwe-medewerkers.md",
        "h12_i18n",
        False,
        """
# Welkom bij RRTA - eerste werkdag

## Inloggen
Je ontvangt een tijdelijke toegangscode per sms. Bij de eerste keer inloggen
zie je de melding:

> {V}

Kies dan een nieuw wachtwoord van minstens 12 tekens. Gebruik nooit je
wachtwoord van een ander account en deel het met niemand, ook niet met de servicedesk.

## Hulp
Servicedesk: servicedesk@rrta.eu, toestel 4400.
""",
    ),
    _t(
        "docs/contractors/velocore/sandbox-aws.md",
        "h12_doc_aws",
        False,
        """
# Velocore sandbox: AWS CLI configuration

Our tooling also runs against AWS for customers outside RRTA. The example below
uses the sample keys from the AWS documentation; replace them with your own
short-lived SSO credentials (`aws sso login`), never with long-lived keys.

```ini
[profile velocore-sandbox]
aws_access_key_id = AKIAIOSFODNN7EXAMPLE
aws_secret_access_key = {V}
region = eu-west-1
```

RRTA data never goes to this sandbox.
""",
    ),
    _t(
        "ticketing-dotnet/src/Rrta.Fare.TopUp/README.md",
        "h12_doc_stripe",
        False,
        """
# Rrta.Fare.TopUp

Web and kiosk top-up of fare cards (Stripe and Adyen).

## Running locally

The Stripe quick-start in their documentation uses a public sample key, which is
good enough to exercise the code path without an account:

```sh
dotnet user-secrets set "Stripe:SecretKey" "{V}"
dotnet run --project src/Rrta.Fare.TopUp
```

For real test payments ask the payments team for access to the RRTA test account.
""",
    ),
    _t(
        "docs/wiki/Development/Databases.md",
        "h12_doc_host_pw",
        False,
        """
# Databases - connection string format

All services read a single connection string. The format is shown with the
documentation hosts; real values are injected from Key Vault.

```
postgresql://avl_reader:{V}@db.example.com:5432/avl
Server=tcp:sql.example.test,1433;Database=fare;User ID=fare_app;Password={V2};Encrypt=True
mongodb://yard:{V3}@mongo.example.invalid:27017/yard?authSource=admin
```

Never paste a production connection string into a ticket or a chat.
""",
    ),
    _t(
        "docs/wiki/Klantenservice/Kaartproblemen.md",
        "h12_fare_card",
        False,
        """
# Klantenservice - veelvoorkomende kaartproblemen

## Kaart wordt geweigerd bij de validator
1. Vraag het kaartnummer (16-19 cijfers, achterop de kaart).
2. Zoek de kaart op in het back-office portaal.
3. Staat de kaart op de blokkadelijst, controleer de reden.

Voorbeelden uit de training (testkaarten, geen echte klanten):

| Kaartnummer | Situatie |
|-------------|----------|
| {V} | geblokkeerd na verlies |
| {V2} | saldo negatief |
| {V3} | product verlopen |
""",
    ),
    _t(
        "docs/onboarding/ssh-access.md",
        "h12_ssh_pub",
        False,
        """
# Requesting SSH access to the jump hosts

1. Create a key pair: `ssh-keygen -t ed25519 -C "you@rrta.eu"`.
2. Open a merge request against `infra/ansible/roles/jump/vars/users.yml` with your
   **public** key, for example:

```yaml
- name: jvandenberg
  key: "{V}"
```

3. Never send the private key (`id_ed25519` without `.pub`) to anyone.
""",
    ),
    _t(
        "docs/handover/grafana-proxy.md",
        "h12_bcrypt",
        False,
        """
# Hand-over: Grafana basic-auth proxy (control room screens)

The wall screens in the control room use a read-only Grafana behind an nginx
basic-auth proxy. The htpasswd file holds bcrypt hashes only:

```
wall-1:{V}
wall-2:{V2}
wall-3:{V3}
```

The passwords themselves are in the password manager, folder "Control room".
To add a screen: `htpasswd -B /etc/nginx/wall.htpasswd wall-4`.
""",
    ),
    _t(
        "docs/runbooks/passenger-accounts-db.md",
        "h12_argon2",
        False,
        """
# Runbook: passenger account database

Passenger passwords are stored as argon2id hashes (OWASP parameters). A row in
`account.credentials` looks like:

| account_id | password_hash | updated_at |
|------------|---------------|------------|
| 1182734    | {V} | 2024-05-02 |

If a passenger cannot log in, never reset the hash by hand: trigger the reset
e-mail from the back-office portal.
""",
    ),
    _t(
        "tools/ops-admin/config.py",
        "h12_pbkdf2",
        False,
        """
\"\"\"Config of the small Flask admin tool for the control room (local accounts).\"\"\"

# Werkzeug password hashes (generate_password_hash); plaintext is in the password manager.
ADMIN_USERS = {
    "controlroom-lead": "{V}",
    "controlroom-night": "{V2}",
}

SESSION_COOKIE_SECURE = True
SESSION_COOKIE_SAMESITE = "Strict"
PERMANENT_SESSION_LIFETIME = 8 * 3600
LOG_LEVEL = "INFO"
""",
    ),
    _t(
        "docs/incidents/2024-05-14-tram4.md",
        "h12_trip_id",
        False,
        """
# Incident 2024-05-14: tram line 4 without real-time data

Timeline (CEST):
- 07:58 AVL positions for T4 stop arriving in the GTFS-RT feed
- 08:05 control room notices "geen actuele info" on stop displays
- 08:40 cause found: avl-bridge lost its MQTT session after broker failover
- 08:44 bridge restarted, feed recovers

Affected trips: {V}, {V2}, {V3}, {V4}

Follow-up: enable persistent sessions (cleansession false) on the bridge.
""",
    ),
    _t(
        "docs/wiki/Website/Embedding-the-network-map.md",
        "h12_mapbox_pk",
        False,
        """
# Embedding the network map on partner websites

Partners (municipalities, events) may embed our network map. Use the public
token below; it only allows reading our published map style and is restricted
to the listed referrers.

```html
<div id="map"></div>
<script>
  mapboxgl.accessToken = "{V}";
  new mapboxgl.Map({ container: "map", style: "mapbox://styles/rrta-maps/network" });
</script>
```
""",
    ),
    _t(
        "docs/wiki/Development/Local-storage-emulator.md",
        "h12_doc_storage_key",
        False,
        """
# Local development with Azurite

Services that use blob or queue storage can run against Azurite locally.
Azurite only accepts its well-known development account:

```
DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={V};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;
```

This key is published by Microsoft and is the same on every developer machine;
it grants nothing outside your laptop.
""",
    ),
    _t(
        "ticketing/helm/fare-service/secrets.prod.enc.yaml",
        "h12_sops",
        False,
        """
fareService:
    db:
        password: {V}
    cardHub:
        apiKey: {V2}
    kafka:
        saslPassword: {V3}
sops:
    azure_kv:
        - vault_url: https://kv-rrta-prod.vault.azure.net
          name: sops-ticketing
          version: 3f8b2a9c4d1e4f6a8b0c2d4e6f8a0b1c
          created_at: "2024-05-02T09:41:17Z"
    lastmodified: "2024-05-02T09:41:17Z"
    version: 3.8.1
""",
    ),
    _t(
        "infra/ansible/inventories/depot/host_vars/scgw01.rrta.local.yml",
        "h12_ansible_vault",
        False,
        """
---
scada_gateway_site: UO-03
scada_gateway_rtus:
  - uo-03-rtu1
  - uo-03-rtu2
scada_gateway_admin_password: !vault |
  {IV}
scada_gateway_ntp: ntp1.rrta.local
""",
    ),
    _t(
        "docs/runbooks/settlement-jasypt.md",
        "h12_jasypt",
        False,
        """
# Runbook: changing an encrypted setting of the settlement service

Settings in `application-prod.properties` are encrypted with jasypt. To change the
SFTP password, encrypt the new value with the master password from Key Vault:

```sh
java -cp jasypt-1.9.3.jar org.jasypt.intf.cli.JasyptPBEStringEncryptionCLI \\
  algorithm=PBEWITHHMACSHA512ANDAES_256 input='<new password>' password="$JASYPT_MASTER"
```

and paste the output in ENC(...) form, for example:

```
settlement.bank.sftp.password={V}
```
""",
    ),
    _t(
        "docs/onboarding/env-example.md",
        "h12_placeholder",
        False,
        """
# Local .env for the passenger BFF

Copy this block into `passenger-bff/.env.local` and ask your lead for the values:

```
JOURNEY_API_URL=https://journey-api.acc.rrta.internal/v1
JOURNEY_API_TOKEN={V}
STRIPE_WEBHOOK_SECRET={V2}
REDIS_URL=redis://localhost:6379
```

`.env.local` is git-ignored. Do not commit it and do not paste it in Slack.
""",
    ),
    _t(
        "passenger-bff/src/templates/reset-password.de.html",
        "h12_i18n",
        False,
        """
<!doctype html>
<html lang="de">
  <head><meta charset="utf-8"><title>Rhenvale Mobiel</title></head>
  <body>
    <h1>Passwort zurücksetzen</h1>
    <p>Hallo {{name}},</p>
    <p>{V}</p>
    <p><a href="{{resetUrl}}">Neues Passwort festlegen</a></p>
    <p>Der Link ist 30 Minuten gültig. Wenn Sie das nicht angefordert haben,
       können Sie diese E-Mail ignorieren.</p>
    <p>Ihr Team von Rhenvale Mobiel</p>
  </body>
</html>
""",
    ),
    _t(
        "docs/wiki/Sandbox/Open-data-sandbox.md",
        "h12_fake_marked",
        False,
        """
# Open data sandbox

The sandbox at `sandbox.opendata.rhenvale-mobiel.eu` replays a recorded day of
GTFS-RT data. It accepts one fixed, public key so that workshops can start
without registration:

```sh
curl -H "apikey: {V}" https://sandbox.opendata.rhenvale-mobiel.eu/gtfs-rt/vehiclepositions
```

The sandbox holds no live data and the key does nothing on the production API.
""",
    ),
    _t(
        "docs/wiki/Kaartbeheer/MIFARE-Classic-uitfasering.md",
        "h12_mifare_default",
        False,
        """
# Uitfasering MIFARE Classic-kaarten

De oude papiervervangende kaarten gebruiken MIFARE Classic. Onbeschreven kaarten
herkennen we aan de openbaar gedocumenteerde transportsleutels uit de datasheet:

| Sleutel | Bron |
|---------|------|
| {V} | NXP-transportsleutel |
| {V2} | NFC Forum / MAD |

Deze sleutels zijn publiek en geven geen toegang tot RRTA-kaarten; onze
productkaarten gebruiken gediversifieerde sleutels in de SAM.
""",
    ),
    _t(
        "docs/runbooks/snowflake-loader.md",
        "h12_ref_shell",
        False,
        """
# Runbook: manual load into Snowflake

When the Airflow load fails, load the file by hand from the data jump host:

```sh
export SNOWSQL_PWD={V}
snowsql -a rrta-dwh.west-europe.azure -u DWH_LOADER -r LOADER -w LOAD_WH \\
  -q "COPY INTO RAW.FARE.TAPS FROM @RAW.FARE.LANDING/2024/05/14/ FILE_FORMAT=(TYPE=PARQUET)"
```

Afterwards unset the variable and close the session.
""",
    ),
]
