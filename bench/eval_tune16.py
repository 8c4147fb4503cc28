"""Blind part ``tune16``: the IT of a regional water-and-power utility, Brennmoor Regional
Utilities (BRU), and the municipalities it serves (Ashcombe, Pellham Falls, Westfirth,
Dunmere). Written blind: the author never saw the scanner, its rules or its tests, nor the other
parts' templates (only ``evalset.py`` and ``eval_tune15.py`` as an example of the shape).

Files are billing and customer-portal code (Java/Spring, .NET, PHP/Laravel), GIS servers
(ArcGIS Enterprise and arcpy scripts, GeoServer, PostGIS, MapServer, QGIS), OT-adjacent IT
(OSIsoft PI and Ignition historians, Kepware, Node-RED, Modbus/OPC-UA bridges, Mosquitto, EMQX
and HiveMQ brokers, Telegraf/InfluxDB, Grafana), field-crew mobile apps (Android, iOS,
Flutter, fastlane), smart-meter head-end integrations (MultiSpeak SOAP, DLMS/COSEM keys, AMI
REST APIs, meter-read SFTP drops), municipal open-data portals (CKAN, Drupal, Socrata),
payment-gateway connectors (Stripe, Braintree, Authorize.Net, Moneris, PayPal, Paymentus-style
lockbox SFTP), Windows and Linux admin scripts (PowerShell, batch, bash, cron, unattend.xml),
Terraform and Ansible, CI (Azure DevOps, GitLab CI) and runbooks in Markdown and Word-export
HTML. Credentials sit next to look-alikes under the same key names: secret-store and
variable references, placeholders, empty values, hashes (bcrypt, ASP.NET Identity, Drupal,
Mosquitto PBKDF2), values encrypted at rest (Jasypt ENC(), GeoServer crypt1/crypt2, DPAPI
SecureString exports, Ansible Vault, SOPS), public tokens and keys (Mapbox pk., Stripe pk_,
certificates, SSH and PEM public keys), ids (UUIDs, Twilio SIDs, DLMS system titles, meter
EUIs, OPC UA node ids), checksums, UI text about passwords and example credentials in docs.
"""

from __future__ import annotations

import base64
import json
import string
import textwrap

import evalset

MULTI_SLOT = True

HEX = "0123456789abcdef"
HEXU = "0123456789ABCDEF"
ALNUM = string.ascii_letters + string.digits
B32L = "abcdefghijklmnopqrstuvwxyz234567"
URLSAFE = ALNUM + "-_"
DRUPAL_ITOA = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class Tune16Values(evalset.Values):
    """Value generators of the tune16 part; every name starts with ``t16_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "cistern",
            "aquifer",
            "penstock",
            "spillway",
            "hydrant",
            "culvert",
            "turbine",
            "floodgate",
            "reservoir",
            "brennmoor",
            "ashcombe",
            "westfirth",
        ]
        self.users = [
            "svc_cis",
            "gisadmin",
            "piadmin",
            "scadagw",
            "meterhe",
            "ckan_admin",
            "fieldcrew",
            "payconn",
        ]

    # -- credentials ----------------------------------------------------------------------
    def t16_pw(self) -> str:
        rng = self.rng
        shape = rng.randrange(6)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(rng.randrange(2016, 2031)) + rng.choice("!#$*.")
        if shape == 1:
            return self.s(rng.randrange(12, 22), ALNUM + "#%*-_.!@")
        if shape == 2:
            return (
                f"{word.capitalize()}-{self.pick(self.words).capitalize()}-{rng.randrange(10, 99)}"
            )
        if shape == 3:
            return self.s(rng.randrange(14, 25), ALNUM)
        if shape == 4:
            return word.replace("a", "@").replace("e", "3").capitalize() + self.s(3, string.digits)
        return "Bru" + self.s(2, string.digits) + word[:4].capitalize() + rng.choice("!?#")

    def t16_weak(self) -> str:
        return self.pick(
            [
                self.pick(self.words) + self.pick(["1", "123", "!", "2024", "01"]),
                "Welcome1",
                "Summer2024!",
                "Water2023!",
                "P@ssw0rd",
                "Pa$$w0rd",
                "admin123",
                "Brennmoor1",
                "password1",
                "Ashcombe2022",
                "geoserver",
                "Spring2025#",
                "letmein",
                "qwerty123",
            ]
        )

    def t16_urlpw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(4, string.digits)
        return self.s(self.rng.randrange(12, 24), ALNUM + "-_.~")

    def t16_dlmskey(self) -> str:
        return self.s(32, HEXU)

    def t16_machinekey(self) -> str:
        return self.s(128, HEXU)

    def t16_laravel(self) -> str:
        return "base64:" + _b64(self.rng.randbytes(32))

    def t16_jwtsecret(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return f"bru-{self.pick(['billing', 'portal', 'fieldapp', 'outage'])}-jwt-{self.s(24, ALNUM)}"
        if shape == 1:
            return self.s(64, HEX)
        if shape == 2:
            return self.s(self.rng.randrange(32, 60), ALNUM + "!@#%^&*-_=+")
        return _b64url(self.rng.randbytes(48))

    def t16_token(self) -> str:
        return self.s(self.rng.randrange(28, 49), ALNUM)

    def t16_stripe(self) -> str:
        if self.rng.randrange(3):
            return "sk_live_" + self.s(self.pick([24, 99]))
        return "rk_live_" + self.s(self.pick([24, 99]))

    def t16_stripe_whsec(self) -> str:
        return "whsec_" + self.s(32)

    def t16_braintree(self) -> str:
        return f"access_token$production${self.s(16, string.ascii_lowercase + string.digits)}${self.s(32, HEX)}"

    def t16_bt_private(self) -> str:
        return self.s(32, HEX)

    def t16_authnet(self) -> str:
        return self.s(16, ALNUM)

    def t16_moneris(self) -> str:
        return self.s(20, ALNUM)

    def t16_paypal(self) -> str:
        return "E" + self.s(79, URLSAFE)

    def t16_twilio(self) -> str:
        return self.s(32, HEX)

    def t16_sendgrid(self) -> str:
        return self.sendgrid()

    def t16_esri(self) -> str:
        if self.rng.randrange(2):
            return "AAPK" + self.s(32, HEX) + self.s(64, URLSAFE)
        return "AAPT" + self.s(self.rng.randrange(150, 200), URLSAFE)

    def t16_arcgis_token(self) -> str:
        return self.s(self.rng.randrange(110, 140), URLSAFE) + "."

    def t16_mapbox_sk(self) -> str:
        user = self.pick(["bru-gis", "brennmoor", "ashcombe-city", "bru-fieldops"])
        body = _b64url(
            json.dumps(
                {"u": user, "a": self.s(25, string.ascii_lowercase + string.digits)},
                separators=(",", ":"),
            ).encode()
        )
        return f"sk.{body}.{self.s(22, URLSAFE)}"

    def t16_gmaps(self) -> str:
        return "AIza" + self.s(35, URLSAFE)

    def t16_fcm(self) -> str:
        return f"AAAA{self.s(7, URLSAFE)}:APA91b{self.s(134, URLSAFE)}"

    def t16_ado_pat(self) -> str:
        if self.rng.randrange(2):
            return self.s(52, B32L)
        return self.s(52, ALNUM) + "JQQJ99" + self.s(18, ALNUM) + "AZDO" + self.s(4, ALNUM)

    def t16_ado_pat_b64(self) -> str:
        return _b64(self.t16_ado_pat().encode())

    def t16_glpat(self) -> str:
        return self.gitlab()

    def t16_glrt(self) -> str:
        return "glrt-" + self.s(20, URLSAFE)

    def t16_azure_conn(self) -> str:
        account = self.pick(["brumeterdata", "bruportalprod", "stbrugisprod", "bruoutagelogs"])
        key = _b64(self.rng.randbytes(64))
        return (
            f"DefaultEndpointsProtocol=https;AccountName={account};AccountKey={key};"
            "EndpointSuffix=core.windows.net"
        )

    def t16_azure_key(self) -> str:
        return _b64(self.rng.randbytes(64))

    def t16_azure_secret(self) -> str:
        return self.azure_client_secret()

    def t16_aws_tf(self) -> str:
        return self.aws_tf_pair()

    def t16_privkey(self) -> str:
        return self.pem(self.pick(["RSA PRIVATE KEY", "PRIVATE KEY"]), self.rng.randrange(9, 15))

    def t16_eckey(self) -> str:
        return self.pem(self.pick(["EC PRIVATE KEY", "PRIVATE KEY"]), 3)

    def t16_openssh(self) -> str:
        return self.openssh_key()

    def t16_community(self) -> str:
        return self.pick(
            [
                self.pick(self.words) + "-" + self.pick(["ro", "rw", "scada", "noc"]),
                self.s(16, ALNUM),
                "BRU" + self.s(4, string.digits) + self.pick(["mon", "Read", "rw"]),
                "public",
                "private",
            ]
        )

    def t16_influx(self) -> str:
        return base64.urlsafe_b64encode(self.rng.randbytes(64)).decode()

    def t16_grafana(self) -> str:
        return self.grafana_sa()

    def t16_ckan_key(self) -> str:
        return self.request_id()

    def t16_ckan_jwt(self) -> str:
        header = _b64url(json.dumps({"typ": "JWT", "alg": "HS256"}, separators=(",", ":")).encode())
        payload = _b64url(
            json.dumps(
                {
                    "jti": _b64url(self.rng.randbytes(46)),
                    "iat": 1650000000 + self.rng.randrange(10**8),
                },
                separators=(",", ":"),
            ).encode()
        )
        return f"{header}.{payload}.{_b64url(self.rng.randbytes(32))}"

    def t16_drupal_salt(self) -> str:
        return _b64url(self.rng.randbytes(self.pick([55, 48, 32])))

    def t16_jwt(self) -> str:
        return self.jwt()

    def t16_basic(self) -> str:
        return self.basic()

    def t16_teams(self) -> str:
        ids = [self.request_id() for _ in range(3)]
        return (
            f"https://brennmoor.webhook.office.com/webhookb2/{ids[0]}@{ids[1]}"
            f"/IncomingWebhook/{self.s(32, HEX)}/{ids[2]}"
        )

    def t16_slackhook(self) -> str:
        return self.slack_webhook()

    def t16_unattend(self) -> str:
        plain = self.t16_pw() + "AdministratorPassword"
        return _b64(plain.encode("utf-16-le"))

    def t16_docker_auth(self) -> str:
        return _b64(f"{self.pick(['svc_build', 'bru-ci', 'fieldapp-ci'])}:{self.t16_pw()}".encode())

    def t16_sas(self) -> str:
        from urllib.parse import quote

        sig = quote(_b64(self.rng.randbytes(32)), safe="")
        return f"sv=2022-11-02&ss=b&srt=co&sp=rwdlac&se=2026-12-31T23:59:59Z&st=2024-01-01T00:00:00Z&spr=https&sig={sig}"

    # -- look-alikes -----------------------------------------------------------------------
    def t16_ph(self) -> str:
        return self.pick(
            [
                "<password>",
                "CHANGE_ME",
                "********",
                "",
                "__PORTAL_DB_PASSWORD__",
                "#{DbPassword}#",
                "REPLACE_ME",
                "<provided by BRU IT service desk>",
                "xxxxxxxxxxxx",
                "TBD",
                "your-password-here",
                "<secret>",
            ]
        )

    def t16_ref_spring(self) -> str:
        return self.pick(
            [
                "${CIS_DB_PASSWORD}",
                "${vault.cis.db.password}",
                "${SPRING_DATASOURCE_PASSWORD:}",
                "${sm://projects/bru-billing/secrets/cis-db-password}",
                "#{systemEnvironment['PAYMENT_API_KEY']}",
            ]
        )

    def t16_ref_dotnet(self) -> str:
        return self.pick(
            [
                "@Microsoft.KeyVault(SecretUri=https://kv-bru-portal.vault.azure.net/secrets/CisDbPassword/)",
                "#{CisDbPassword}#",
                "__CisDbPassword__",
                "$(CisDbPassword)",
                "@Microsoft.KeyVault(VaultName=kv-bru-portal;SecretName=StripeSecretKey)",
            ]
        )

    def t16_ref_php(self) -> str:
        return self.pick(
            [
                "getenv('PAYMENT_API_KEY')",
                "$_ENV['DB_PASSWORD']",
                "env('STRIPE_SECRET')",
                "$_SERVER['MONERIS_API_TOKEN'] ?? ''",
                "Settings::get('open_data_api_key')",
            ]
        )

    def t16_ref_shell(self) -> str:
        return self.pick(
            [
                "$(cat /etc/bru/secrets/pg_gis.pw)",
                "${PGPASSWORD:?PGPASSWORD must be set}",
                "$(vault kv get -field=password secret/gis/postgis)",
                "$(az keyvault secret show --vault-name kv-bru-ops --name sftp-lockbox --query value -o tsv)",
                '"$SFTP_PASS"',
                "$(pass show bru/ami/headend)",
            ]
        )

    def t16_ref_ps(self) -> str:
        return self.pick(
            [
                "$env:SVC_METERREAD_PW",
                "(Get-Secret -Name PiAdmin -Vault BruOps -AsPlainText)",
                "(Get-AutomationVariable -Name 'SqlCisPassword')",
                "$Credential.GetNetworkCredential().Password",
                "(Get-AzKeyVaultSecret -VaultName kv-bru-ops -Name sql-sa -AsPlainText)",
            ]
        )

    def t16_ref_ado(self) -> str:
        return self.pick(
            [
                "$(FieldKeystorePassword)",
                "$(keystore-password)",
                "${{ variables.KeystorePassword }}",
                "$(SIGNING_STORE_PASSWORD)",
            ]
        )

    def t16_ref_gitlab(self) -> str:
        return self.pick(
            [
                "$CI_JOB_TOKEN",
                "${DEPLOY_TOKEN}",
                "$GS_ADMIN_PASSWORD",
                "${GS_ADMIN_PASSWORD:?not set}",
            ]
        )

    def t16_ref_tf(self) -> str:
        return self.pick(
            [
                "var.sql_admin_password",
                "random_password.postgis.result",
                "data.azurerm_key_vault_secret.sql_admin.value",
                "azurerm_storage_account.meterdata.primary_access_key",
                "data.aws_ssm_parameter.historian_pw.value",
            ]
        )

    def t16_ref_ansible(self) -> str:
        return self.pick(
            [
                '"{{ vault_geoserver_admin_password }}"',
                "\"{{ lookup('community.hashi_vault.hashi_vault', 'secret=kv/data/ot/mqtt:password') }}\"",
                '"{{ vault_pi_admin_pw }}"',
                "\"{{ lookup('env', 'CKAN_SYSADMIN_PASSWORD') }}\"",
                '"{{ mqtt_bridge_password | default(omit) }}"',
            ]
        )

    def t16_ref_py(self) -> str:
        return self.pick(
            [
                'os.environ["ARCGIS_PASSWORD"]',
                'os.getenv("PI_WEBAPI_PASSWORD")',
                'keyring.get_password("arcgis", "gisadmin")',
                'cfg["headend"]["password"]',
                "settings.CKAN_API_TOKEN",
            ]
        )

    def t16_ref_mobile(self) -> str:
        return self.pick(
            [
                "BuildConfig.MAPS_API_KEY",
                "const String.fromEnvironment('ARCGIS_API_KEY')",
                "dotenv.env['FIELD_API_TOKEN']!",
                'Bundle.main.object(forInfoDictionaryKey: "ArcGISApiKey") as? String ?? ""',
                "${MAPS_API_KEY}",
                "$(ARCGIS_API_KEY)",
            ]
        )

    def t16_jasypt(self) -> str:
        return "ENC(" + _b64(self.rng.randbytes(self.pick([16, 32, 48]))) + ")"

    def t16_gscrypt(self) -> str:
        scheme = self.pick(["crypt1:", "crypt2:", "digest1:"])
        size = {"crypt1:": 24, "crypt2:": 32, "digest1:": 48}[scheme]
        return scheme + _b64(self.rng.randbytes(size))

    def t16_bcrypt(self) -> str:
        return self.pick(["$2b$", "$2y$", "$2a$"]) + "10$" + self.s(53, ALNUM + "./")

    def t16_mosq(self) -> str:
        return self.mosquitto_hash()

    def t16_dpapi(self) -> str:
        return "01000000d08c9ddf0115d1118c7a00c04fc297eb01000000" + self.s(
            self.pick([280, 312, 344]), HEX
        )

    def t16_aspnet_hash(self) -> str:
        raw = (
            bytes([1])
            + (1).to_bytes(4, "big")
            + self.pick([10000, 100000]).to_bytes(4, "big")
            + (16).to_bytes(4, "big")
            + self.rng.randbytes(48)
        )
        return _b64(raw)

    def t16_drupal_hash(self) -> str:
        return "$S$E" + self.s(52, DRUPAL_ITOA)

    def t16_md5(self) -> str:
        return self.s(32, HEX)

    def t16_thumb(self) -> str:
        return self.s(40, HEXU)

    def t16_sha256(self) -> str:
        return self.digest()

    def t16_gitsha(self) -> str:
        return self.git_sha()

    def t16_uuid(self) -> str:
        return self.request_id()

    def t16_twilio_sid(self) -> str:
        return "AC" + self.s(32, HEX)

    def t16_stripe_pk(self) -> str:
        return "pk_live_" + self.s(self.pick([24, 99]))

    def t16_mapbox_pk(self) -> str:
        user = self.pick(["bru-gis", "brennmoor", "ashcombe-city", "bru-fieldops"])
        body = _b64url(
            json.dumps(
                {"u": user, "a": self.s(25, string.ascii_lowercase + string.digits)},
                separators=(",", ":"),
            ).encode()
        )
        return f"pk.{body}.{self.s(22, URLSAFE)}"

    def t16_esri_clientid(self) -> str:
        return self.s(16, ALNUM)

    def t16_systitle(self) -> str:
        return self.pick(["4C4701", "49534B", "454C53", "53454E"]) + self.s(10, HEXU)

    def t16_eui(self) -> str:
        return self.pick(["70B3D5", "0004A3", "00137A"]) + self.s(10, HEXU)

    def t16_nodeid(self) -> str:
        return self.pick(
            [
                f"ns=2;s=Ashcombe.PS{self.rng.randrange(1, 30):02d}.Pump{self.rng.randrange(1, 5)}.Speed",
                f"ns=3;i={self.rng.randrange(1000, 99999)}",
                f"ns=2;s=Westfirth.WTP.Filter{self.rng.randrange(1, 9)}.Turbidity",
                f"ns=4;g={self.request_id()}",
            ]
        )

    def t16_cert(self) -> str:
        return self.certificate()

    def t16_pubkey(self) -> str:
        return self.public_pem()

    def t16_sshpub(self) -> str:
        return self.ssh_public()

    def t16_text(self) -> str:
        return self.pick(
            [
                "Password must be at least 12 characters and include a number",
                "Your account number and PIN do not match our records",
                "Forgot your password? Call 1-800-555-0142",
                "Incorrect password. 2 attempts remaining before lockout.",
                "Enter the password printed on your meter access card",
                "Contraseña incorrecta",
                "Mot de passe oublié ?",
                "The API key you entered is not valid",
                "Token expired, please sign in again",
            ]
        )

    def t16_docpw(self) -> str:
        return self.pick(self.words).capitalize() + self.s(3, string.digits)

    def t16_fake(self) -> str:
        return self.pick(
            [
                "fake-api-key",
                "not-a-real-secret",
                "dummy_password",
                "FAKE_STRIPE_KEY_FOR_TESTS",
                "test-token-do-not-use",
                "unit-test-placeholder",
                "sk_test_FAKEFAKEFAKEFAKE",
                "xxx-fake-xxx",
            ]
        )

    def t16_azurite(self) -> str:
        return self.pick(
            [
                "UseDevelopmentStorage=true",
                "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
                "K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
            ]
        )

    def t16_trusted(self) -> str:
        return self.pick(
            [
                "Server=sqlcis01.bru.internal;Database=CIS;Integrated Security=SSPI;TrustServerCertificate=True",
                "Data Source=SQLGIS02\\GIS;Initial Catalog=Assets;Trusted_Connection=True",
                "Server=tcp:sql-bru-portal.database.windows.net,1433;Database=Portal;Authentication=Active Directory Managed Identity",
                "Host=pg-gis01;Database=gis;Username=gis_reader;Integrated Security=true",
            ]
        )

    def t16_vault(self) -> str:
        return self.ansible_vault()

    def t16_sops(self) -> str:
        return self.sops_value()

    def t16_sizeval(self) -> str:
        return self.pick(["8", "12", "14", "90", "365", "5", "3", "30"])

    def t16_fingerprint(self) -> str:
        return ":".join(self.s(2, HEXU) for _ in range(20))

    def t16_secretname(self) -> str:
        return self.pick(
            [
                "cis-db-password",
                "StripeSecretKey",
                "geoserver-admin",
                "mqtt-bridge-creds",
                "ArcGISPublisher",
                "lockbox-sftp-key",
            ]
        )

    def t16_acct(self) -> str:
        return self.pick(
            [
                f"{self.rng.randrange(10**9, 10**10)}",
                f"{self.rng.randrange(100000, 999999)}-{self.rng.randrange(100, 999)}",
                f"BRU{self.s(8, string.digits)}",
            ]
        )

    def t16_mvn_enc(self) -> str:
        return "{" + _b64(self.rng.randbytes(self.pick([24, 32, 40]))) + "}"

    def t16_cipher(self) -> str:
        return "{cipher}" + self.s(self.pick([64, 96, 128]), HEX)

    def t16_scram(self) -> str:
        return self.scram_verifier()

    def t16_authcfg(self) -> str:
        return self.s(7, string.ascii_lowercase + string.digits)

    def t16_nr_cred(self) -> str:
        return self.s(32, HEX) + _b64(self.rng.randbytes(self.pick([48, 96, 144])))

    def t16_hash_b64(self) -> str:
        return _b64(self.rng.randbytes(64))

    def t16_ref_env(self) -> str:
        return self.pick(
            ["${INFLUX_TOKEN}", "$INFLUX_TOKEN", "@{bru_ot:influx_token}", "${env:INFLUX_TOKEN}"]
        )

    def t16_ref_gradle(self) -> str:
        return self.pick(
            [
                'System.getenv("FIELD_KEYSTORE_PASSWORD")',
                'project.findProperty("fieldStorePassword") as String?',
                'keystoreProperties["storePassword"] as String',
                'providers.environmentVariable("SIGNING_STORE_PASSWORD").get()',
            ]
        )

    def t16_pin(self) -> str:
        return _b64(self.rng.randbytes(32))

    def t16_pgp_pub(self) -> str:
        return self.pgp_public()

    def t16_shadow(self) -> str:
        return self.sha512crypt()

    def t16_apr1(self) -> str:
        return self.apr1()

    def t16_mssql_hash(self) -> str:
        return "0x0200" + self.s(136, HEXU)

    def t16_h1(self) -> str:
        return self.gosum_hash()

    def t16_b64pw(self) -> str:
        return _b64(self.t16_pw().encode())

    def t16_ref_cmd(self) -> str:
        return self.pick(["%MDM_IMPORT_PW%", "!SVC_PW!", "%~1", "%SVC_MDMIMPORT_PASSWORD%"])

    def t16_msencrypt(self) -> str:
        return "{" + self.s(32, HEXU) + "}"

    def t16_ref_grafana(self) -> str:
        return self.pick(
            [
                "$__file{/run/secrets/grafana_admin_password}",
                "$__env{GF_PI_WEBAPI_PASSWORD}",
                "${PI_WEBAPI_PASSWORD}",
                "$__vault{kv:secret/ot/grafana:password}",
            ]
        )

    def t16_ref_compose(self) -> str:
        return self.pick(
            [
                "${GEOSERVER_ADMIN_PASSWORD:?set it in .env}",
                "${GEOSERVER_ADMIN_PASSWORD}",
                "${POSTGRES_PASSWORD:-}",
                "${GIS_DB_PASSWORD}",
            ]
        )

    def t16_ref_psql(self) -> str:
        return self.pick([":'gis_owner_pw'", ":'editor_pw'", ":'ro_password'", ":'role_password'"])

    def t16_sealed(self) -> str:
        return self.sealed()

    def t16_sonar(self) -> str:
        return self.pick(["sqp_", "squ_", "sqa_"]) + self.s(40, HEX)


VALUES = Tune16Values


def _t(path: str, gen: str, positive: bool, text: str) -> evalset.Template:
    return (path, textwrap.dedent(text).lstrip("\n"), gen, positive)


TEMPLATES: list[evalset.Template] = []

# ---------------------------------------------------------------- billing / CIS (Java, Spring)
TEMPLATES += [
    _t(
        "billing/cis-core/src/main/resources/application-prod.yml",
        "t16_pw",
        True,
        r"""
        spring:
          datasource:
            url: jdbc:postgresql://pg-cis01.bru.internal:5432/cis
            username: cis_app
            password: {V}
            hikari:
              maximum-pool-size: 40
          rabbitmq:
            host: mq-cis01.bru.internal
            port: 5671
            username: cis_events
            password: '{V2}'
            ssl:
              enabled: true
        cis:
          billing-cycle:
            cron: "0 30 1 * * *"
        """,
    ),
    _t(
        "billing/cis-core/src/main/resources/application.yml",
        "t16_ref_spring",
        False,
        r"""
        spring:
          application:
            name: cis-core
          datasource:
            url: ${CIS_DB_URL:jdbc:postgresql://localhost:5432/cis}
            username: ${CIS_DB_USER:cis_app}
            password: {V}
          jpa:
            open-in-view: false
        payment:
          gateway:
            base-url: https://api.paymentus.example/v1
            api-key: {V2}
        management:
          endpoints:
            web:
              exposure:
                include: health,info,prometheus
        """,
    ),
    _t(
        "billing/cis-core/src/main/resources/application-uat.properties",
        "t16_jasypt",
        False,
        r"""
        # Values encrypted with jasypt (PBEWITHHMACSHA512ANDAES_256), key comes from JASYPT_ENCRYPTOR_PASSWORD
        spring.datasource.url=jdbc:postgresql://pg-cis-uat.bru.internal:5432/cis
        spring.datasource.username=cis_app
        spring.datasource.password={V}
        cis.print-vendor.sftp.password={V2}
        cis.sms.twilio.auth-token={V3}
        """,
    ),
    _t(
        "billing/cis-core/src/main/resources/bootstrap-uat.properties",
        "t16_pw",
        True,
        r"""
        # jasypt master password for UAT (prod one is injected by the pipeline)
        jasypt.encryptor.algorithm=PBEWITHHMACSHA512ANDAES_256
        jasypt.encryptor.password={V}
        jasypt.encryptor.iv-generator-classname=org.jasypt.iv.RandomIvGenerator
        """,
    ),
    _t(
        "billing/bill-print/src/main/java/net/bru/billprint/PrintVendorUploader.java",
        "t16_pw",
        True,
        r"""
        package net.bru.billprint;

        import com.jcraft.jsch.ChannelSftp;
        import com.jcraft.jsch.JSch;
        import com.jcraft.jsch.Session;

        public class PrintVendorUploader {

            private static final String HOST = "sftp.printmailpartner.net";
            private static final String USER = "bru_bills";
            private static final String PASSWORD = "{V}";

            public void upload(String localFile, String remoteDir) throws Exception {
                JSch jsch = new JSch();
                Session session = jsch.getSession(USER, HOST, 22);
                session.setPassword(PASSWORD);
                session.setConfig("StrictHostKeyChecking", "yes");
                session.connect(15000);
                ChannelSftp sftp = (ChannelSftp) session.openChannel("sftp");
                sftp.connect();
                sftp.put(localFile, remoteDir);
                sftp.disconnect();
                session.disconnect();
            }
        }
        """,
    ),
    _t(
        "billing/cis-core/src/test/java/net/bru/cis/account/AccountRepositoryIT.java",
        "t16_weak",
        True,
        r"""
        package net.bru.cis.account;

        @Testcontainers
        @SpringBootTest
        class AccountRepositoryIT {

            @Container
            static PostgreSQLContainer<?> pg = new PostgreSQLContainer<>("postgis/postgis:15-3.4")
                    .withDatabaseName("cis")
                    .withUsername("cis_test")
                    .withPassword("{V}");

            @DynamicPropertySource
            static void props(DynamicPropertyRegistry r) {
                r.add("spring.datasource.url", pg::getJdbcUrl);
                r.add("spring.datasource.username", pg::getUsername);
                r.add("spring.datasource.password", pg::getPassword);
            }
        }
        """,
    ),
    _t(
        "billing/cis-core/src/test/resources/application-test.yml",
        "t16_fake",
        False,
        r"""
        payment:
          gateway:
            base-url: http://localhost:${wiremock.server.port}/v1
            api-key: {V}
        cis:
          sms:
            twilio:
              account-sid: ACtest
              auth-token: {V2}
        """,
    ),
    _t(
        "billing/cis-core/src/main/java/net/bru/cis/security/JwtTokenService.java",
        "t16_jwtsecret",
        True,
        r"""
        package net.bru.cis.security;

        import io.jsonwebtoken.Jwts;
        import io.jsonwebtoken.security.Keys;
        import java.nio.charset.StandardCharsets;
        import javax.crypto.SecretKey;

        @Service
        public class JwtTokenService {

            // TODO move to config before go-live (ticket CIS-2211)
            private static final String SIGNING_SECRET = "{V}";

            private final SecretKey key =
                    Keys.hmacShaKeyFor(SIGNING_SECRET.getBytes(StandardCharsets.UTF_8));

            public String issue(String accountNumber) {
                return Jwts.builder().subject(accountNumber).signWith(key).compact();
            }
        }
        """,
    ),
    _t(
        "billing/.m2/settings.xml",
        "t16_pw",
        True,
        r"""
        <settings xmlns="http://maven.apache.org/SETTINGS/1.0.0">
          <servers>
            <server>
              <id>bru-nexus-releases</id>
              <username>svc_maven</username>
              <password>{V}</password>
            </server>
            <server>
              <id>bru-nexus-snapshots</id>
              <username>svc_maven</username>
              <password>{V}</password>
            </server>
          </servers>
          <mirrors>
            <mirror>
              <id>bru-nexus</id>
              <url>https://nexus.bru.internal/repository/maven-public/</url>
              <mirrorOf>*</mirrorOf>
            </mirror>
          </mirrors>
        </settings>
        """,
    ),
    _t(
        "billing/.mvn/settings-ci.xml",
        "t16_mvn_enc",
        False,
        r"""
        <settings>
          <!-- passwords encrypted with mvn --encrypt-password; master key in ~/.m2/settings-security.xml on the agent -->
          <servers>
            <server>
              <id>bru-nexus-releases</id>
              <username>svc_maven</username>
              <password>{V}</password>
            </server>
            <server>
              <id>bru-nexus-docker</id>
              <username>svc_maven</username>
              <password>{V2}</password>
            </server>
          </servers>
        </settings>
        """,
    ),
    _t(
        "billing/outage-notifier/src/main/resources/twilio.properties",
        "t16_twilio",
        True,
        r"""
        # Outage SMS notifications (Ashcombe + Pellham Falls water customers)
        twilio.account-sid=${TWILIO_ACCOUNT_SID}
        twilio.auth-token={V}
        twilio.from-number=+15555550123
        twilio.status-callback=https://notify.bru-utilities.net/sms/status
        """,
    ),
    _t(
        "billing/outage-notifier/src/main/resources/application.yml",
        "t16_twilio_sid",
        False,
        r"""
        notifier:
          twilio:
            account-sid: {V}
            messaging-service-sid: MG2b7c1a0e4f9d3b6a8c5e7f1d2a4b6c8e
            auth-token: ${TWILIO_AUTH_TOKEN}
          throttle-per-minute: 600
        """,
    ),
    _t(
        "billing/cis-core/src/main/resources/application-tls.properties",
        "t16_ref_spring",
        False,
        r"""
        server.port=8443
        server.ssl.enabled=true
        server.ssl.key-store=classpath:keystore/cis-portal.p12
        server.ssl.key-store-type=PKCS12
        server.ssl.key-store-password={V}
        server.ssl.key-alias=cis-portal
        server.ssl.trust-store=classpath:keystore/bru-ca.jks
        server.ssl.trust-store-password={V2}
        """,
    ),
    _t(
        "billing/cis-core/src/main/java/net/bru/cis/web/PasswordRules.java",
        "t16_text",
        False,
        r"""
        package net.bru.cis.web;

        public final class PasswordRules {
            public static final int MIN_LENGTH = 12;
            public static final String PASSWORD_PARAM = "password";
            public static final String MSG_TOO_SHORT = "{V}";
            public static final String MSG_LOCKED = "{V2}";

            private PasswordRules() {}
        }
        """,
    ),
    _t(
        "billing/cis-core/src/main/resources/db/migration/V12__seed_portal_admins.sql",
        "t16_bcrypt",
        False,
        r"""
        -- portal back-office admins; passwords are reset on first login
        INSERT INTO portal_user (username, email, password_hash, role, must_change)
        VALUES ('bo_admin', 'billing-admins@bru-utilities.net', '{V}', 'ADMIN', true),
               ('bo_support', 'csr-leads@bru-utilities.net', '{V2}', 'SUPPORT', true);
        """,
    ),
    _t(
        "billing/config-repo/cis-core-prod.yml",
        "t16_cipher",
        False,
        r"""
        # Spring Cloud Config: values decrypted by the config server (/encrypt endpoint)
        spring:
          datasource:
            password: '{V}'
        cis:
          print-vendor:
            sftp-password: '{V2}'
          paymentus:
            hmac-secret: '{V3}'
        """,
    ),
]

# ---------------------------------------------------------------- customer portal (.NET)
TEMPLATES += [
    _t(
        "portal/src/Bru.CustomerPortal/appsettings.Production.json",
        "t16_pw",
        True,
        r"""
        {
          "Logging": { "LogLevel": { "Default": "Warning", "Microsoft.AspNetCore": "Warning" } },
          "AllowedHosts": "myaccount.bru-utilities.net",
          "ConnectionStrings": {
            "Portal": "Server=tcp:sqlportal01.bru.internal,1433;Database=CustomerPortal;User Id=portal_app;Password={V};Encrypt=True;TrustServerCertificate=False",
            "Cis": "Host=pg-cis01.bru.internal;Database=cis;Username=portal_ro;Password={V2};SSL Mode=Require"
          },
          "Outage": { "MapUrl": "https://outages.bru-utilities.net" }
        }
        """,
    ),
    _t(
        "portal/src/Bru.CustomerPortal/appsettings.json",
        "t16_ref_dotnet",
        False,
        r"""
        {
          "ConnectionStrings": {
            "Portal": "{V}"
          },
          "Stripe": {
            "PublishableKey": "",
            "SecretKey": "{V2}"
          },
          "SendGrid": {
            "ApiKey": "{V3}",
            "From": "no-reply@bru-utilities.net"
          }
        }
        """,
    ),
    _t(
        "portal/src/Bru.CustomerPortal/appsettings.Development.json",
        "t16_azurite",
        False,
        r"""
        {
          "Storage": {
            "BillPdfContainer": "bill-pdfs",
            "ConnectionString": "{V}"
          },
          "DetailedErrors": true
        }
        """,
    ),
    _t(
        "portal/src/Bru.CustomerPortal/appsettings.Staging.json",
        "t16_azure_conn",
        True,
        r"""
        {
          "Storage": {
            "BillPdfContainer": "bill-pdfs-stg",
            "ConnectionString": "{V}"
          },
          "FeatureFlags": { "PaperlessBilling": true, "BudgetBilling": false }
        }
        """,
    ),
    _t(
        "portal/legacy/BillPay.Web/Web.config",
        "t16_machinekey",
        True,
        r"""
        <?xml version="1.0" encoding="utf-8"?>
        <configuration>
          <system.web>
            <compilation debug="false" targetFramework="4.8" />
            <authentication mode="Forms">
              <forms loginUrl="~/Account/Login" timeout="30" requireSSL="true" />
            </authentication>
            <!-- same key on WEBPAY01 and WEBPAY02 (load balanced) -->
            <machineKey validationKey="{V}"
                        decryptionKey="AutoGenerate,IsolateApps"
                        validation="HMACSHA256" />
          </system.web>
        </configuration>
        """,
    ),
    _t(
        "portal/legacy/BillPay.Web/Web.Release.config",
        "t16_trusted",
        False,
        r"""
        <?xml version="1.0"?>
        <configuration xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform">
          <connectionStrings>
            <add name="BillPay" connectionString="{V}"
                 xdt:Transform="SetAttributes" xdt:Locator="Match(name)" />
          </connectionStrings>
        </configuration>
        """,
    ),
    _t(
        "portal/src/Bru.CustomerPortal/secrets.json",
        "t16_stripe",
        True,
        r"""
        {
          "Stripe:SecretKey": "{V}",
          "Stripe:WebhookSecretName": "portal-stripe-webhook",
          "Portal:SupportEmail": "webcare@bru-utilities.net"
        }
        """,
    ),
    _t(
        "portal/src/Bru.CustomerPortal/Services/LockboxHmac.cs",
        "t16_token",
        True,
        r"""
        using System.Security.Cryptography;
        using System.Text;

        namespace Bru.CustomerPortal.Services;

        public static class LockboxHmac
        {
            // shared secret agreed with the payment processor (walk-in kiosks)
            private const string SharedSecret = "{V}";

            public static string Sign(string payload)
            {
                using var h = new HMACSHA256(Encoding.UTF8.GetBytes(SharedSecret));
                return Convert.ToHexString(h.ComputeHash(Encoding.UTF8.GetBytes(payload)));
            }
        }
        """,
    ),
    _t(
        "portal/tests/Bru.CustomerPortal.Tests/PaymentControllerTests.cs",
        "t16_fake",
        False,
        r"""
        public class PaymentControllerTests
        {
            private static IConfiguration BuildConfig() =>
                new ConfigurationBuilder()
                    .AddInMemoryCollection(new Dictionary<string, string?>
                    {
                        ["Stripe:SecretKey"] = "{V}",
                        ["SendGrid:ApiKey"] = "{V2}",
                    })
                    .Build();

            [Fact]
            public async Task Rejects_Amount_Over_Balance() { /* ... */ }
        }
        """,
    ),
    _t(
        "portal/src/Bru.CustomerPortal/Data/Seed/backoffice-users.json",
        "t16_aspnet_hash",
        False,
        r"""
        [
          {
            "UserName": "csr.supervisor",
            "Email": "csr-supervisors@bru-utilities.net",
            "PasswordHash": "{V}",
            "SecurityStamp": "QXJDM4ZQ7H5T2WJ3G6OBQ2R6ZB7NFMVK",
            "Roles": [ "Supervisor" ]
          },
          {
            "UserName": "billing.analyst",
            "Email": "billing@bru-utilities.net",
            "PasswordHash": "{V2}",
            "SecurityStamp": "K2VW7PQN3TXZLR5YH6D4JF8MBC2AUE9S",
            "Roles": [ "Analyst" ]
          }
        ]
        """,
    ),
    _t(
        "portal/src/Bru.CustomerPortal/Properties/launchSettings.json",
        "t16_ph",
        False,
        r"""
        {
          "profiles": {
            "Bru.CustomerPortal": {
              "commandName": "Project",
              "launchBrowser": true,
              "applicationUrl": "https://localhost:7043;http://localhost:5043",
              "environmentVariables": {
                "ASPNETCORE_ENVIRONMENT": "Development",
                "SendGrid__ApiKey": "{V}"
              }
            }
          }
        }
        """,
    ),
    _t(
        "portal/NuGet.Config",
        "t16_ado_pat",
        True,
        r"""
        <?xml version="1.0" encoding="utf-8"?>
        <configuration>
          <packageSources>
            <clear />
            <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
            <add key="bru-shared" value="https://pkgs.dev.azure.com/brennmoor/_packaging/bru-shared/nuget/v3/index.json" />
          </packageSources>
          <packageSourceCredentials>
            <bru-shared>
              <add key="Username" value="build" />
              <add key="ClearTextPassword" value="{V}" />
            </bru-shared>
          </packageSourceCredentials>
        </configuration>
        """,
    ),
    _t(
        "portal/src/Bru.OutageMap/wwwroot/js/map-config.js",
        "t16_mapbox_pk",
        False,
        r"""
        // public style token (URL-restricted to outages.bru-utilities.net)
        mapboxgl.accessToken = '{V}';

        export const map = new mapboxgl.Map({
          container: 'outage-map',
          style: 'mapbox://styles/bru-gis/clq8outage01',
          center: [-1.842, 52.311],
          zoom: 9,
        });
        """,
    ),
    _t(
        "portal/src/Bru.OutageMap/tools/Upload-Tilesets.ps1",
        "t16_mapbox_sk",
        True,
        r"""
        # Uploads the nightly outage polygons to Mapbox Tiling Service
        $token = "{V}"
        $tileset = "bru-gis.outage-polygons"
        $src = "\\fs01\gis\exports\outages\outages.geojson.ld"

        Invoke-RestMethod -Method Post `
          -Uri "https://api.mapbox.com/tilesets/v1/sources/bru-gis/outages?access_token=$token" `
          -InFile $src -ContentType "multipart/form-data"
        Invoke-RestMethod -Method Post -Uri "https://api.mapbox.com/tilesets/v1/$tileset/publish?access_token=$token"
        """,
    ),
    _t(
        "portal/src/Bru.CustomerPortal/Resources/SharedResource.es.resx",
        "t16_text",
        False,
        r"""
        <?xml version="1.0" encoding="utf-8"?>
        <root>
          <data name="Login_InvalidPassword" xml:space="preserve">
            <value>{V}</value>
          </data>
          <data name="Login_PasswordHint" xml:space="preserve">
            <value>{V2}</value>
          </data>
        </root>
        """,
    ),
    _t(
        "portal/src/Bru.CustomerPortal/appsettings.Production.Jwt.json",
        "t16_ref_dotnet",
        False,
        r"""
        {
          "Jwt": {
            "Issuer": "https://myaccount.bru-utilities.net",
            "Audience": "bru-mobile",
            "SigningKey": "{V}",
            "AccessTokenMinutes": 15
          }
        }
        """,
    ),
    _t(
        "portal/tools/MeterReadImport/App.Release.config",
        "t16_ref_dotnet",
        False,
        r"""
        <?xml version="1.0"?>
        <configuration xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform">
          <appSettings>
            <add key="SftpPassword" value="{V}" xdt:Transform="SetAttributes" xdt:Locator="Match(key)" />
          </appSettings>
        </configuration>
        """,
    ),
]

# ---------------------------------------------------------------- payment portal (PHP / Laravel)
TEMPLATES += [
    _t(
        "payportal/.env",
        "t16_laravel",
        True,
        r"""
        APP_NAME="BRU Pay"
        APP_ENV=production
        APP_KEY={V}
        APP_DEBUG=false
        APP_URL=https://pay.bru-utilities.net

        LOG_CHANNEL=stack
        DB_CONNECTION=mysql
        DB_HOST=mysql-pay01.bru.internal
        DB_PORT=3306
        DB_DATABASE=payportal
        DB_USERNAME=payportal
        """,
    ),
    _t(
        "payportal/.env.example",
        "t16_ph",
        False,
        r"""
        APP_NAME="BRU Pay"
        APP_ENV=local
        APP_KEY=
        APP_URL=http://localhost

        DB_CONNECTION=mysql
        DB_HOST=127.0.0.1
        DB_DATABASE=payportal
        DB_USERNAME=payportal
        DB_PASSWORD={V}

        STRIPE_KEY=
        STRIPE_SECRET={V2}
        MONERIS_STORE_ID=store5
        MONERIS_API_TOKEN={V3}
        """,
    ),
    _t(
        "payportal/.env.production",
        "t16_stripe",
        True,
        r"""
        DB_PASSWORD=${PAYPORTAL_DB_PASSWORD}
        STRIPE_KEY=pk_live_from_dashboard
        STRIPE_SECRET={V}
        CASHIER_CURRENCY=usd
        CASHIER_LOGGER=stack
        """,
    ),
    _t(
        "payportal/config/services.php",
        "t16_ref_php",
        False,
        r"""
        <?php

        return [
            'stripe' => [
                'key' => env('STRIPE_KEY'),
                'secret' => {V},
            ],
            'moneris' => [
                'store_id' => env('MONERIS_STORE_ID', 'store5'),
                'api_token' => {V2},
                'environment' => env('MONERIS_ENV', 'live'),
            ],
        ];
        """,
    ),
    _t(
        "payportal/config/moneris.php",
        "t16_moneris",
        True,
        r"""
        <?php
        // Moneris Gateway (Canadian cross-border customers in Westfirth)
        return [
            'store_id' => 'monca04217',
            'api_token' => '{V}',
            'environment' => 'live',
            'avs' => true,
            'cvd' => true,
        ];
        """,
    ),
    _t(
        "payportal/app/Services/Gateways/AuthorizeNetGateway.php",
        "t16_authnet",
        True,
        r"""
        <?php

        namespace App\Services\Gateways;

        use net\authorize\api\contract\v1 as AnetAPI;

        class AuthorizeNetGateway implements PaymentGateway
        {
            private const LOGIN_ID = '7pGx3Tw9Qa';
            private const TRANSACTION_KEY = '{V}';

            private function auth(): AnetAPI\MerchantAuthenticationType
            {
                $auth = new AnetAPI\MerchantAuthenticationType();
                $auth->setName(self::LOGIN_ID);
                $auth->setTransactionKey(self::TRANSACTION_KEY);
                return $auth;
            }
        }
        """,
    ),
    _t(
        "payportal/tests/Feature/CheckoutTest.php",
        "t16_fake",
        False,
        r"""
        <?php

        namespace Tests\Feature;

        class CheckoutTest extends TestCase
        {
            protected function setUp(): void
            {
                parent::setUp();
                config(['services.stripe.secret' => '{V}']);
                config(['services.moneris.api_token' => '{V2}']);
            }

            public function test_guest_can_pay_by_account_number(): void
            {
                $this->post('/pay', ['account' => '1000234567', 'amount' => '84.12'])
                     ->assertRedirect('/pay/confirm');
            }
        }
        """,
    ),
    _t(
        "payportal/database/seeders/AdminUserSeeder.php",
        "t16_weak",
        True,
        r"""
        <?php

        namespace Database\Seeders;

        use App\Models\User;
        use Illuminate\Support\Facades\Hash;

        class AdminUserSeeder extends Seeder
        {
            public function run(): void
            {
                User::updateOrCreate(
                    ['email' => 'payadmin@bru-utilities.net'],
                    ['name' => 'Pay Admin', 'password' => Hash::make('{V}'), 'is_admin' => true]
                );
            }
        }
        """,
    ),
    _t(
        "payportal/database/seeders/CsrUserSeeder.php",
        "t16_bcrypt",
        False,
        r"""
        <?php

        class CsrUserSeeder extends Seeder
        {
            public function run(): void
            {
                DB::table('users')->insert([
                    ['name' => 'CSR Team Lead', 'email' => 'csr.lead@bru-utilities.net', 'password' => '{V}'],
                    ['name' => 'CSR Trainer', 'email' => 'csr.training@bru-utilities.net', 'password' => '{V2}'],
                ]);
            }
        }
        """,
    ),
    _t(
        "payportal/config/database.php",
        "t16_ref_php",
        False,
        r"""
        <?php

        return [
            'default' => env('DB_CONNECTION', 'mysql'),
            'connections' => [
                'mysql' => [
                    'driver' => 'mysql',
                    'host' => env('DB_HOST', '127.0.0.1'),
                    'database' => env('DB_DATABASE', 'payportal'),
                    'username' => env('DB_USERNAME', 'payportal'),
                    'password' => {V},
                    'charset' => 'utf8mb4',
                ],
            ],
        ];
        """,
    ),
    _t(
        "payportal/resources/js/checkout.js",
        "t16_stripe_pk",
        False,
        r"""
        import { loadStripe } from '@stripe/stripe-js';

        const stripe = await loadStripe('{V}');
        const elements = stripe.elements({ mode: 'payment', amount: window.balanceCents, currency: 'usd' });
        elements.create('payment').mount('#payment-element');
        """,
    ),
    _t(
        "payportal/app/Http/Controllers/StripeWebhookController.php",
        "t16_stripe_whsec",
        True,
        r"""
        <?php

        namespace App\Http\Controllers;

        use Stripe\Webhook;

        class StripeWebhookController extends Controller
        {
            private string $endpointSecret = '{V}';

            public function __invoke(Request $request)
            {
                $event = Webhook::constructEvent(
                    $request->getContent(),
                    $request->header('Stripe-Signature'),
                    $this->endpointSecret
                );
                dispatch(new RecordPayment($event));
                return response()->noContent();
            }
        }
        """,
    ),
    _t(
        "legacy/billpay-php/inc/db.inc.php",
        "t16_weak",
        True,
        r"""
        <?php
        // Ashcombe water billpay (pre-merger), still serving paper-bill QR codes
        $link = mysqli_connect('localhost', 'billpay', '{V}', 'ashcombe_billpay');
        if (!$link) {
            die('Database unavailable, please call 555-0100');
        }
        mysqli_set_charset($link, 'utf8');
        """,
    ),
    _t(
        "legacy/billpay-php/inc/admin_users.inc.php",
        "t16_md5",
        False,
        r"""
        <?php
        // md5 of the admin passwords (legacy login.php compares md5($_POST['pw']))
        $ADMIN_USERS = array(
            'clerk1' => '{V}',
            'clerk2' => '{V2}',
            'treasurer' => '{V3}',
        );
        """,
    ),
    _t(
        "payportal/config/braintree.php",
        "t16_bt_private",
        True,
        r"""
        <?php

        return [
            'environment' => 'production',
            'merchantId' => 'x7qk2b9wz4d3m8pn',
            'publicKey' => 'tq3v8b6m2kcw9xj4',
            'privateKey' => '{V}',
        ];
        """,
    ),
    _t(
        "payportal/config/paypal.php",
        "t16_paypal",
        True,
        r"""
        <?php

        return [
            'mode' => 'live',
            'live' => [
                'client_id' => 'AVbR3x9Kq2mZt7YwLp4NcH8sJd6FgUe1oIaXbC5vQn0TrEyWuSkMhGjDlPzAiOfB',
                'client_secret' => '{V}',
                'app_id' => 'APP-80W284485P519543T',
            ],
            'currency' => 'USD',
        ];
        """,
    ),
]

# ---------------------------------------------------------------- GIS (GeoServer, ArcGIS, PostGIS, MapServer, QGIS)
TEMPLATES += [
    _t(
        "gis/geoserver/data_dir/security/usergroup/default/users.xml",
        "t16_gscrypt",
        False,
        r"""
        <?xml version="1.0" encoding="UTF-8"?>
        <userRegistry xmlns="http://www.geoserver.org/security/users" version="1.0">
          <users>
            <user enabled="true" name="admin" password="{V}"/>
            <user enabled="true" name="wfs_editor" password="{V2}"/>
            <user enabled="true" name="ashcombe_viewer" password="{V3}"/>
          </users>
          <groups/>
        </userRegistry>
        """,
    ),
    _t(
        "gis/geoserver/data_dir/workspaces/bru_water/assets_postgis/datastore.xml",
        "t16_gscrypt",
        False,
        r"""
        <dataStore>
          <id>DataStoreInfoImpl-4d1c2a7b:18c2f9e1a3b:-7ffe</id>
          <name>assets_postgis</name>
          <type>PostGIS</type>
          <enabled>true</enabled>
          <connectionParameters>
            <entry key="host">pg-gis01.bru.internal</entry>
            <entry key="port">5432</entry>
            <entry key="database">gis</entry>
            <entry key="schema">water</entry>
            <entry key="user">geoserver_ro</entry>
            <entry key="passwd">{V}</entry>
            <entry key="dbtype">postgis</entry>
          </connectionParameters>
        </dataStore>
        """,
    ),
    _t(
        "gis/geoserver/data_dir/workspaces/ashcombe/parcels/datastore.xml",
        "t16_pw",
        True,
        r"""
        <dataStore>
          <id>DataStoreInfoImpl-61e0b3f4:18d77a0c2e1:-7fd2</id>
          <name>parcels</name>
          <type>PostGIS (JNDI)</type>
          <enabled>true</enabled>
          <workspace><id>WorkspaceInfoImpl-ashcombe</id></workspace>
          <connectionParameters>
            <entry key="host">10.40.12.21</entry>
            <entry key="database">ashcombe_cadastre</entry>
            <entry key="user">gs_parcels</entry>
            <entry key="passwd">plain:{V}</entry>
            <entry key="Expose primary keys">true</entry>
          </connectionParameters>
        </dataStore>
        """,
    ),
    _t(
        "gis/geoserver/docker-compose.yml",
        "t16_ref_compose",
        False,
        r"""
        services:
          geoserver:
            image: docker.osgeo.org/geoserver:2.24.2
            ports: ["8080:8080"]
            environment:
              GEOSERVER_ADMIN_USER: admin
              GEOSERVER_ADMIN_PASSWORD: {V}
              INSTALL_EXTENSIONS: "true"
              STABLE_EXTENSIONS: "wps,css"
          postgis:
            image: postgis/postgis:15-3.4
            environment:
              POSTGRES_USER: gis
              POSTGRES_PASSWORD: {V2}
        """,
    ),
    _t(
        "gis/geoserver/scripts/publish_layers_v2.sh",
        "t16_ref_shell",
        False,
        r"""
        #!/usr/bin/env bash
        set -euo pipefail
        GS=https://maps.bru.internal/geoserver
        GS_PASS={V}
        curl -sf -u "admin:${GS_PASS}" "$GS/rest/reload" -XPOST
        """,
    ),
    _t(
        "gis/arcgis/scripts/publish_services.py",
        "t16_pw",
        True,
        r"""
        from arcgis.gis import GIS
        from arcgis.gis.server import Server

        PORTAL = "https://gis.bru.internal/portal"
        gis = GIS(PORTAL, "gisadmin", "{V}", verify_cert=False)

        for item in gis.content.search("owner:gisadmin type:'Service Definition'", max_items=200):
            if "Water" in item.title:
                item.publish(overwrite=True)
                print("republished", item.title)
        """,
    ),
    _t(
        "gis/arcgis/scripts/nightly_replica_sync.py",
        "t16_ref_py",
        False,
        r"""
        import os
        from arcgis.gis import GIS

        gis = GIS(
            "https://gis.bru.internal/portal",
            username="svc_replica",
            password={V},
        )
        flc = gis.content.get("8c1f0a6e2b7d4e13a9f5c4d2b6e8a1f0").layers[0]
        flc.manager.synchronize_replica(replica_id="WestfirthFieldReplica")
        """,
    ),
    _t(
        "gis/arcgis/webapps/outage-viewer/config.json",
        "t16_esri",
        True,
        r"""
        {
          "portalUrl": "https://www.arcgis.com",
          "apiKey": "{V}",
          "basemap": "arcgis/topographic",
          "operationalLayers": [
            { "id": "outages", "url": "https://services.arcgis.com/bRuGiS01/arcgis/rest/services/Outages/FeatureServer/0" }
          ]
        }
        """,
    ),
    _t(
        "gis/arcgis/webapps/asset-inspector/config.json",
        "t16_esri_clientid",
        False,
        r"""
        {
          "portalUrl": "https://gis.bru.internal/portal",
          "appId": "{V}",
          "oauthPopup": false,
          "redirectUri": "https://gis.bru.internal/apps/asset-inspector/oauth-callback.html"
        }
        """,
    ),
    _t(
        "gis/arcgis/scripts/export_hydrants.sh",
        "t16_arcgis_token",
        True,
        r"""
        #!/bin/sh
        # token generated 2024-02-12 via /sharing/rest/generateToken, expiration 525600
        TOKEN="{V}"
        curl -s "https://gis.bru.internal/server/rest/services/Water/Hydrants/FeatureServer/0/query?where=1%3D1&outFields=*&f=geojson&token=${TOKEN}" \
          -o /data/opendata/hydrants.geojson
        """,
    ),
    _t(
        "gis/postgis/.pgpass",
        "t16_pw",
        True,
        r"""
        pg-gis01.bru.internal:5432:gis:gis_owner:{V}
        pg-gis01.bru.internal:5432:*:replicator:{V2}
        pg-gis02.bru.internal:5432:gis:gis_reader:{V3}
        """,
    ),
    _t(
        "gis/postgis/init/01-roles.sql",
        "t16_ref_psql",
        False,
        r"""
        -- psql -v gis_owner_pw=... -v editor_pw=... -v ro_password=... -f 01-roles.sql
        CREATE ROLE gis_owner LOGIN PASSWORD {V};
        CREATE ROLE gis_editor LOGIN PASSWORD {V2} IN ROLE gis_write;
        CREATE ROLE geoserver_ro LOGIN PASSWORD {V3};
        GRANT CONNECT ON DATABASE gis TO geoserver_ro;
        GRANT USAGE ON SCHEMA water, electric TO geoserver_ro;
        """,
    ),
    _t(
        "gis/postgis/dump/roles.sql",
        "t16_scram",
        False,
        r"""
        --
        -- Roles (pg_dumpall --roles-only, 2024-05-03)
        --
        CREATE ROLE gis_owner;
        ALTER ROLE gis_owner WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN PASSWORD '{V}';
        CREATE ROLE gis_reader;
        ALTER ROLE gis_reader WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN PASSWORD '{V2}';
        """,
    ),
    _t(
        "gis/mapserver/water_network.map",
        "t16_msencrypt",
        False,
        r"""
        MAP
          NAME "water_network"
          CONFIG "MS_ENCRYPTION_KEY" "/etc/mapserver/keys/water.key"
          EXTENT 412000 265000 468000 312000
          PROJECTION "init=epsg:27700" END
          LAYER
            NAME "mains"
            TYPE LINE
            CONNECTIONTYPE POSTGIS
            CONNECTION "host=pg-gis02.bru.internal dbname=gis user=mapserver password={V} port=5432"
            DATA "geom from water.mains using unique gid using srid=27700"
            STATUS ON
          END
        END
        """,
    ),
    _t(
        "gis/qgis/projects/field_asset_viewer.qgs",
        "t16_pw",
        True,
        r"""
        <qgis projectname="Field asset viewer" version="3.34.3-Prizren">
          <projectlayers>
            <maplayer type="vector" geometry="Line">
              <id>mains_1c2e7a</id>
              <datasource>dbname='gis' host=pg-gis02.bru.internal port=5432 user='qgis_viewer' password='{V}' sslmode=require key='gid' srid=27700 type=LineString table="water"."mains" (geom)</datasource>
              <layername>Water mains</layername>
            </maplayer>
          </projectlayers>
        </qgis>
        """,
    ),
    _t(
        "gis/qgis/projects/field_asset_editor.qgs",
        "t16_authcfg",
        False,
        r"""
        <qgis projectname="Field asset editor" version="3.34.3-Prizren">
          <projectlayers>
            <maplayer type="vector" geometry="Point">
              <id>valves_8f0b21</id>
              <datasource>dbname='gis' host=pg-gis01.bru.internal port=5432 authcfg={V} sslmode=require key='gid' srid=27700 type=Point table="water"."valves" (geom)</datasource>
              <layername>Valves</layername>
            </maplayer>
          </projectlayers>
        </qgis>
        """,
    ),
    _t(
        "gis/arcgis/docs/portal-python-setup.md",
        "t16_docpw",
        False,
        r"""
        # Connecting to Portal from Python (training)

        Use the training portal only; it is reset every night.

        ```python
        from arcgis.gis import GIS
        gis = GIS("https://portal.example.com/portal", "student01", "{V}")
        ```

        For production, sign in with `GIS("home")` inside ArcGIS Pro, never with a password.
        """,
    ),
]

# ---------------------------------------------------------------- OT-adjacent IT (historians, brokers, bridges)
TEMPLATES += [
    _t(
        "ot/mosquitto/conf.d/bridge-cloud.conf",
        "t16_pw",
        True,
        r"""
        # bridge plant telemetry (DMZ broker) to the enterprise broker
        connection bru-enterprise
        address mqtt-ent01.bru.internal:8883
        bridge_protocol_version mqttv311
        bridge_cafile /etc/mosquitto/ca/bru-ca.crt
        remote_clientid dmz-bridge-01
        remote_username dmz_bridge
        remote_password {V}
        topic telemetry/# out 1 plant/ bru/plant/
        topic commands/# in 1
        """,
    ),
    _t(
        "ot/mosquitto/passwd",
        "t16_mosq",
        False,
        r"""
        dmz_bridge:{V}
        telegraf:{V2}
        nodered:{V3}
        """,
    ),
    _t(
        "ot/mosquitto/conf.d/bridge-cloud.conf.example",
        "t16_ph",
        False,
        r"""
        # copy to bridge-cloud.conf and fill in from the OT password safe
        connection bru-enterprise
        address mqtt-ent01.bru.internal:8883
        bridge_cafile /etc/mosquitto/ca/bru-ca.crt
        remote_clientid dmz-bridge-01
        remote_username dmz_bridge
        remote_password {V}
        topic telemetry/# out 1 plant/ bru/plant/
        """,
    ),
    _t(
        "ot/emqx/etc/emqx.conf",
        "t16_weak",
        True,
        r"""
        node {
          name = "emqx@emqx-ot01.bru.internal"
          cookie = "{V2}"
          data_dir = "/opt/emqx/data"
        }

        dashboard {
          listeners.http.bind = 18083
          default_username = "admin"
          default_password = "{V}"
        }
        """,
    ),
    _t(
        "ot/hivemq/extensions/hivemq-file-rbac-extension/credentials.xml",
        "t16_hash_b64",
        False,
        r"""
        <?xml version="1.0" encoding="UTF-8" standalone="yes"?>
        <file-rbac>
            <users>
                <user>
                    <name>pumpstation-gw</name>
                    <password>{V}</password>
                    <roles><id>station</id></roles>
                </user>
                <user>
                    <name>historian-sub</name>
                    <password>{V2}</password>
                    <roles><id>reader</id></roles>
                </user>
            </users>
        </file-rbac>
        """,
    ),
    _t(
        "ot/nodered/settings.js",
        "t16_jwtsecret",
        True,
        r"""
        module.exports = {
            uiPort: process.env.PORT || 1880,
            flowFile: 'flows.json',
            // key used to encrypt flows_cred.json; must match on the standby instance
            credentialSecret: "{V}",
            httpNodeCors: { origin: "*", methods: "GET,PUT,POST,DELETE" },
            logging: { console: { level: "info", metrics: false, audit: false } },
        };
        """,
    ),
    _t(
        "ot/nodered/settings.admin.js",
        "t16_bcrypt",
        False,
        r"""
        module.exports = {
            adminAuth: {
                type: "credentials",
                users: [
                    { username: "otadmin", password: "{V}", permissions: "*" },
                    { username: "operator", password: "{V2}", permissions: "read" },
                ],
            },
            credentialSecret: process.env.NODE_RED_CREDENTIAL_SECRET,
        };
        """,
    ),
    _t(
        "ot/nodered/flows_cred.json",
        "t16_nr_cred",
        False,
        r"""
        {
            "$": "{V}"
        }
        """,
    ),
    _t(
        "ot/modbus-bridge/config.yaml",
        "t16_pw",
        True,
        r"""
        # modbus2mqtt bridge, Dunmere booster stations
        mqtt:
          url: mqtts://mqtt-ent01.bru.internal:8883
          client_id: modbus-bridge-dunmere
          username: modbus_dunmere
          password: "{V}"
        modbus:
          - name: booster-3
            host: 10.72.3.10
            port: 502
            unit_id: 1
            poll_ms: 1000
            registers:
              - { name: discharge_pressure, address: 40001, type: float32, scale: 0.1 }
              - { name: pump1_run, address: 10001, type: coil }
        """,
    ),
    _t(
        "ot/modbus-bridge/config.example.yaml",
        "t16_ph",
        False,
        r"""
        mqtt:
          url: mqtts://broker:8883
          client_id: modbus-bridge-example
          username: bridge
          password: "{V}"
        modbus:
          - name: station
            host: 192.0.2.10
            port: 502
            unit_id: 1
        """,
    ),
    _t(
        "ot/opcua-bridge/appsettings.json",
        "t16_ref_dotnet",
        False,
        r"""
        {
          "OpcUa": {
            "EndpointUrl": "opc.tcp://kepware01.ot.bru.internal:49320",
            "SecurityPolicy": "Basic256Sha256",
            "MessageSecurityMode": "SignAndEncrypt",
            "UserName": "opc_bridge",
            "Password": "{V}",
            "PublishingIntervalMs": 1000
          },
          "Mqtt": { "Host": "mqtt-ent01.bru.internal", "Port": 8883, "User": "opcua_bridge", "Password": "{V2}" }
        }
        """,
    ),
    _t(
        "ot/opcua-bridge/nodes.json",
        "t16_nodeid",
        False,
        r"""
        {
          "subscriptions": [
            { "nodeId": "{V}", "topic": "bru/plant/ashcombe/ps/speed", "samplingMs": 1000 },
            { "nodeId": "{V2}", "topic": "bru/plant/westfirth/wtp/turbidity", "samplingMs": 5000 },
            { "nodeId": "{V3}", "topic": "bru/plant/misc/tag", "samplingMs": 10000 }
          ]
        }
        """,
    ),
    _t(
        "ot/opcua-bridge/pki/own/private/opcua-bridge.pem",
        "t16_privkey",
        True,
        r"""
        {V}
        """,
    ),
    _t(
        "ot/opcua-bridge/pki/trusted/certs/kepware01.pem",
        "t16_cert",
        False,
        r"""
        {V}
        """,
    ),
    _t(
        "ot/opcua-bridge/security.yaml",
        "t16_thumb",
        False,
        r"""
        # Server certificates accepted by the bridge (SHA-1 thumbprints as shown by UaExpert)
        trusted_servers:
          - name: kepware01
            thumbprint: {V}
          - name: kepware02
            thumbprint: {V2}
        auto_accept_untrusted: false
        """,
    ),
    _t(
        "ot/telegraf/telegraf.conf",
        "t16_influx",
        True,
        r"""
        [agent]
          interval = "10s"
          hostname = "telegraf-ot01"

        [[outputs.influxdb_v2]]
          urls = ["https://influx-ot01.bru.internal:8086"]
          token = "{V}"
          organization = "bru-ot"
          bucket = "scada_raw"

        [[inputs.modbus]]
          name = "dunmere_booster_3"
          controller = "tcp://10.72.3.10:502"
          slave_id = 1
          holding_registers = [
            { name = "discharge_pressure", byte_order = "ABCD", data_type = "FLOAT32-IEEE", scale = 1.0, address = [0, 1] },
          ]
        """,
    ),
    _t(
        "ot/telegraf/telegraf.d/outputs.conf",
        "t16_ref_env",
        False,
        r"""
        [[outputs.influxdb_v2]]
          urls = ["https://influx-ot02.bru.internal:8086"]
          token = "{V}"
          organization = "bru-ot"
          bucket = "scada_raw"
        """,
    ),
    _t(
        "ot/grafana/grafana.ini",
        "t16_ref_grafana",
        False,
        r"""
        [server]
        domain = grafana-ot.bru.internal
        root_url = https://grafana-ot.bru.internal/

        [security]
        admin_user = admin
        admin_password = {V}
        cookie_secure = true

        [auth.anonymous]
        enabled = false
        """,
    ),
    _t(
        "ot/grafana/provisioning/datasources/pi-webapi.yaml",
        "t16_ref_grafana",
        False,
        r"""
        apiVersion: 1
        datasources:
          - name: PI Web API
            type: gridprotectionalliance-osisoftpi-datasource
            access: proxy
            url: https://pi-web01.ot.bru.internal/piwebapi
            basicAuth: true
            basicAuthUser: BRU\svc_grafana_pi
            jsonData:
              piserver: PIDA01
            secureJsonData:
              basicAuthPassword: {V}
        """,
    ),
    _t(
        "ot/grafana/provisioning/datasources/influx.yaml",
        "t16_ref_env",
        False,
        r"""
        apiVersion: 1
        datasources:
          - name: SCADA raw
            type: influxdb
            url: https://influx-ot01.bru.internal:8086
            jsonData:
              version: Flux
              organization: bru-ot
              defaultBucket: scada_raw
            secureJsonData:
              token: {V}
        """,
    ),
    _t(
        "ot/pi/scripts/Export-PiTags.ps1",
        "t16_dpapi",
        False,
        r"""
        # Export tag list from the PI Data Archive through PI Web API (runs on ops-jump01)
        $user = "BRU\svc_pi_export"
        $pass = ConvertTo-SecureString "{V}"  # exported with ConvertFrom-SecureString as svc_pi_export
        $cred = New-Object System.Management.Automation.PSCredential($user, $pass)

        $base = "https://pi-web01.ot.bru.internal/piwebapi"
        $ds = Invoke-RestMethod -Uri "$base/dataservers?name=PIDA01" -Credential $cred
        $points = Invoke-RestMethod -Uri "$($ds.Links.Points)?maxCount=100000" -Credential $cred
        $points.Items | Select-Object Name, PointType, EngineeringUnits |
            Export-Csv -NoTypeInformation -Path "D:\exports\pi_tags.csv"
        """,
    ),
    _t(
        "ot/pi/piwebapi_client/client.py",
        "t16_basic",
        True,
        r"""
        import requests

        BASE = "https://pi-web01.ot.bru.internal/piwebapi"
        HEADERS = {
            "Authorization": "Basic {V}",
            "X-Requested-With": "XMLHttpRequest",
        }


        def recorded(webid: str, start: str = "*-1d", end: str = "*"):
            r = requests.get(f"{BASE}/streams/{webid}/recorded", params={"startTime": start, "endTime": end}, headers=HEADERS, timeout=30)
            r.raise_for_status()
            return r.json()["Items"]
        """,
    ),
    _t(
        "ot/scada-gw/snmpd.conf",
        "t16_community",
        True,
        r"""
        # SCADA gateway (Moxa/Linux) SNMP agent, polled by the NOC
        sysLocation    Westfirth WTP, control room rack 2
        sysContact     ot-support@bru-utilities.net
        rocommunity    {V} 10.90.0.0/16
        rwcommunity    {V2} 10.90.4.15
        agentAddress   udp:161
        """,
    ),
    _t(
        "ot/k8s/mqtt-bridge-secret.enc.yaml",
        "t16_sops",
        False,
        r"""
        apiVersion: v1
        kind: Secret
        metadata:
            name: mqtt-bridge-creds
            namespace: ot-integration
        type: Opaque
        stringData:
            MQTT_USERNAME: {V}
            MQTT_PASSWORD: {V2}
        sops:
            age:
                - recipient: age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq
            lastmodified: "2024-04-18T09:12:44Z"
            version: 3.8.1
        """,
    ),
]

# ---------------------------------------------------------------- field-crew mobile apps
TEMPLATES += [
    _t(
        "mobile/fieldcrew-android/app/src/main/AndroidManifest.xml",
        "t16_gmaps",
        True,
        r"""
        <?xml version="1.0" encoding="utf-8"?>
        <manifest xmlns:android="http://schemas.android.com/apk/res/android">
            <uses-permission android:name="android.permission.ACCESS_FINE_LOCATION" />
            <uses-permission android:name="android.permission.CAMERA" />
            <application
                android:name=".FieldCrewApp"
                android:label="@string/app_name"
                android:icon="@mipmap/ic_launcher">
                <meta-data
                    android:name="com.google.android.geo.API_KEY"
                    android:value="{V}" />
                <activity android:name=".ui.WorkOrderActivity" android:exported="true" />
            </application>
        </manifest>
        """,
    ),
    _t(
        "mobile/fieldcrew-android/gradle.properties",
        "t16_pw",
        True,
        r"""
        org.gradle.jvmargs=-Xmx4g -Dfile.encoding=UTF-8
        android.useAndroidX=true
        kotlin.code.style=official
        FIELD_STORE_FILE=../keystore/fieldcrew-release.jks
        FIELD_STORE_PASSWORD={V}
        FIELD_KEY_ALIAS=fieldcrew
        FIELD_KEY_PASSWORD={V2}
        """,
    ),
    _t(
        "mobile/fieldcrew-android/app/build.gradle.kts",
        "t16_ref_gradle",
        False,
        r"""
        android {
            namespace = "net.bru.fieldcrew"
            signingConfigs {
                create("release") {
                    storeFile = file("../keystore/fieldcrew-release.jks")
                    storePassword = {V}
                    keyAlias = "fieldcrew"
                    keyPassword = {V2}
                }
            }
            buildTypes {
                release {
                    signingConfig = signingConfigs.getByName("release")
                    isMinifyEnabled = true
                }
            }
        }
        """,
    ),
    _t(
        "mobile/fieldcrew-android/app/src/main/res/values/strings.xml",
        "t16_text",
        False,
        r"""
        <resources>
            <string name="app_name">BRU Field Crew</string>
            <string name="login_password_hint">Password</string>
            <string name="login_error_password">{V}</string>
            <string name="login_error_generic">{V2}</string>
        </resources>
        """,
    ),
    _t(
        "mobile/fieldcrew-android/app/src/main/java/net/bru/fieldcrew/net/WorkOrderApi.kt",
        "t16_token",
        True,
        r"""
        package net.bru.fieldcrew.net

        import okhttp3.Interceptor

        object WorkOrderApi {
            const val BASE_URL = "https://fieldapi.bru-utilities.net/v2/"
            private const val API_KEY = "{V}"

            val authInterceptor = Interceptor { chain ->
                chain.proceed(
                    chain.request().newBuilder()
                        .header("X-Api-Key", API_KEY)
                        .build()
                )
            }
        }
        """,
    ),
    _t(
        "mobile/fieldcrew-android/app/src/test/java/net/bru/fieldcrew/LoginViewModelTest.kt",
        "t16_fake",
        False,
        r"""
        class LoginViewModelTest {
            private val repo = FakeAuthRepository(validUser = "crew042", validPassword = "{V}")

            @Test
            fun `wrong password shows error`() = runTest {
                val vm = LoginViewModel(repo)
                vm.login("crew042", "{V2}")
                assertEquals(LoginState.Error, vm.state.value)
            }
        }
        """,
    ),
    _t(
        "mobile/fieldcrew-ios/FieldCrew/Info.plist",
        "t16_ref_mobile",
        False,
        r"""
        <?xml version="1.0" encoding="UTF-8"?>
        <!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
        <plist version="1.0">
        <dict>
            <key>CFBundleDisplayName</key>
            <string>BRU Field</string>
            <key>ArcGISApiKey</key>
            <string>{V}</string>
            <key>NSLocationWhenInUseUsageDescription</key>
            <string>Your location is used to find nearby work orders.</string>
        </dict>
        </plist>
        """,
    ),
    _t(
        "mobile/fieldcrew-ios/FieldCrew/Services/OutageAPI.swift",
        "t16_jwt",
        True,
        r"""
        import Foundation

        enum OutageAPI {
            static let base = URL(string: "https://fieldapi.bru-utilities.net/v2")!
            // service token for the read-only outage feed (expires with the 2025 cert)
            static let serviceToken = "{V}"

            static func request(_ path: String) -> URLRequest {
                var r = URLRequest(url: base.appendingPathComponent(path))
                r.setValue("Bearer \(serviceToken)", forHTTPHeaderField: "Authorization")
                return r
            }
        }
        """,
    ),
    _t(
        "mobile/fieldcrew-ios/fastlane/.env.default",
        "t16_ph",
        False,
        r"""
        FASTLANE_USER=mobile-releases@bru-utilities.net
        MATCH_GIT_URL=git@gitlab.bru.internal:mobile/certificates.git
        MATCH_PASSWORD={V}
        FASTLANE_SKIP_UPDATE_CHECK=1
        """,
    ),
    _t(
        "mobile/fieldcrew-ios/fastlane/AuthKey_7QX2K9L4PA.p8",
        "t16_eckey",
        True,
        r"""
        {V}
        """,
    ),
    _t(
        "mobile/meter_reader/lib/config/env_prod.dart",
        "t16_ref_mobile",
        False,
        r"""
        class EnvProd {
          static const apiBase = 'https://meterapi.bru-utilities.net';
          static final apiToken = {V};
        }
        """,
    ),
    _t(
        "mobile/meter_reader/test/sync_service_test.dart",
        "t16_fake",
        False,
        r"""
        void main() {
          test('rejects a bad token', () async {
            final client = MockClient((req) async => http.Response('', 401));
            final svc = SyncService.withClient(client, token: '{V}');
            expect(svc.pushReads('[]'), throwsException);
          });
        }
        """,
    ),
    _t(
        "mobile/fieldcrew-android/app/src/main/res/xml/network_security_config.xml",
        "t16_pin",
        False,
        r"""
        <?xml version="1.0" encoding="utf-8"?>
        <network-security-config>
            <domain-config cleartextTrafficPermitted="false">
                <domain includeSubdomains="true">fieldapi.bru-utilities.net</domain>
                <pin-set expiration="2026-01-01">
                    <pin digest="SHA-256">{V}</pin>
                    <pin digest="SHA-256">{V2}</pin>
                </pin-set>
            </domain-config>
        </network-security-config>
        """,
    ),
    _t(
        "mobile/backend/notify/send_crew_push.py",
        "t16_fcm",
        True,
        r"""
        import requests

        FCM_SERVER_KEY = "{V}"


        def notify_crew(device_token: str, work_order: str) -> None:
            requests.post(
                "https://fcm.googleapis.com/fcm/send",
                headers={"Authorization": f"key={FCM_SERVER_KEY}", "Content-Type": "application/json"},
                json={"to": device_token, "notification": {"title": "New work order", "body": work_order}},
                timeout=10,
            )
        """,
    ),
]

# ---------------------------------------------------------------- smart-meter head-end / AMI / MDM
TEMPLATES += [
    _t(
        "ami/multispeak/ms-client.properties",
        "t16_jasypt",
        False,
        r"""
        # MultiSpeak v5 client: CIS -> AMI head-end (MR_Server, CD_Server)
        multispeak.endpoint.mr=https://headend01.ami.bru.internal/MultiSpeak/v503/MR_Server.asmx
        multispeak.endpoint.cd=https://headend01.ami.bru.internal/MultiSpeak/v503/CD_Server.asmx
        multispeak.userid=CIS_MSPK
        multispeak.pwd={V}
        multispeak.company=BRU
        multispeak.timeout.ms=60000
        """,
    ),
    _t(
        "ami/dlms/keys/pilot_meters_keys.csv",
        "t16_dlmskey",
        True,
        r"""
        meter_serial,key_version,key_type,key
        LGZ-44017201,3,GUEK,{V}
        LGZ-44017201,3,GAK,{V2}
        LGZ-44017202,3,GUEK,{V3}
        LGZ-44017202,3,GAK,{V4}
        """,
    ),
    _t(
        "ami/dlms/meter_inventory.csv",
        "t16_systitle",
        False,
        r"""
        meter_serial,manufacturer,system_title,firmware,installed
        LGZ-44017201,Landis+Gyr,{V},E360-2.14,2023-09-14
        LGZ-44017202,Landis+Gyr,{V2},E360-2.14,2023-09-14
        ISK-90022817,Iskraemeco,{V3},AM550-1.09,2024-01-22
        """,
    ),
    _t(
        "ami/dlms/read_register.py",
        "t16_dlmskey",
        True,
        r"""
        from gurux_dlms import GXDLMSClient
        from gurux_dlms.enums import Authentication, InterfaceType, Security
        from gurux_dlms.GXByteBuffer import GXByteBuffer

        client = GXDLMSClient(True, 1, 1, Authentication.HIGH_GMAC, None, InterfaceType.WRAPPER)
        client.ciphering.security = Security.AUTHENTICATION_ENCRYPTION
        client.ciphering.systemTitle = GXByteBuffer.hexToBytes("4C47443136383131")
        client.ciphering.blockCipherKey = GXByteBuffer.hexToBytes("{V}")
        client.ciphering.authenticationKey = GXByteBuffer.hexToBytes("{V2}")
        """,
    ),
    _t(
        "ami/lorawan/chirpstack.toml",
        "t16_jwtsecret",
        True,
        r"""
        [postgresql]
          dsn="postgres://chirpstack:${CHIRPSTACK_DB_PASSWORD}@pg-ami01.bru.internal/chirpstack?sslmode=require"
          max_open_connections=10

        [api]
          bind="0.0.0.0:8080"
          secret="{V}"

        [network]
          net_id="000000"
          enabled_regions=["eu868"]
        """,
    ),
    _t(
        "ami/lorawan/devices.csv",
        "t16_eui",
        False,
        r"""
        dev_eui,join_eui,name,profile
        {V},0000000000000000,ashcombe-wm-00412,water-meter-classA
        {V2},0000000000000000,ashcombe-wm-00413,water-meter-classA
        {V3},0000000000000000,westfirth-pl-0007,pressure-logger
        """,
    ),
    _t(
        "ami/lorawan/provisioning/app_keys.csv",
        "t16_dlmskey",
        True,
        r"""
        # OTAA AppKeys from the meter vendor shipment BRU-2024-07 (import then delete!)
        dev_eui,app_key
        70B3D5E75E0041A2,{V}
        70B3D5E75E0041A3,{V2}
        """,
    ),
    _t(
        "ami/headend/rest/sensus_client.py",
        "t16_token",
        True,
        r"""
        import requests

        HEADEND = "https://rni.sensus-ami.example-utility.net/api/v1"
        API_KEY = "{V}"


        def interval_reads(meter_id: str, day: str) -> list[dict]:
            r = requests.get(
                f"{HEADEND}/meters/{meter_id}/intervals",
                params={"date": day},
                headers={"x-api-key": API_KEY},
                timeout=60,
            )
            r.raise_for_status()
            return r.json()["intervals"]
        """,
    ),
    _t(
        "ami/headend/rest/README.md",
        "t16_docpw",
        False,
        r"""
        # Head-end REST client

        Try it against the vendor's public sandbox:

        ```bash
        curl -u demo:{V} https://sandbox.example.com/api/v1/meters?limit=5
        ```

        Production credentials live in Key Vault `kv-bru-ami` (`headend-api-key`).
        """,
    ),
    _t(
        "ami/mdm/sftp/pull_meter_reads.sh",
        "t16_pw",
        True,
        r"""
        #!/bin/bash
        # pulls daily register reads from the head-end drop box into the MDM inbox
        set -e
        DAY=$(date -d yesterday +%Y%m%d)
        sshpass -p '{V}' sftp -oBatchMode=no -b - mdm_pull@ami-drop.bru.internal <<EOT
        cd /outbound/reads
        get READS_${DAY}_*.csv /srv/mdm/inbox/
        bye
        EOT
        """,
    ),
    _t(
        "ami/mdm/sftp/pull_meter_reads_v2.sh",
        "t16_ref_shell",
        False,
        r"""
        #!/bin/bash
        set -euo pipefail
        export SSHPASS={V}
        sshpass -e sftp -b /etc/mdm/pull.batch mdm_pull@ami-drop.bru.internal
        """,
    ),
    _t(
        "ami/mdm/sftp/keys/mdm_pull_ed25519",
        "t16_openssh",
        True,
        r"""
        {V}
        """,
    ),
    _t(
        "ami/mdm/sftp/keys/authorized_keys",
        "t16_sshpub",
        False,
        r"""
        {V}
        {V2}
        """,
    ),
    _t(
        "ami/headend/itron/integration.config.xml",
        "t16_jasypt",
        False,
        r"""
        <integration name="itron-openway">
          <endpoint>https://openway01.ami.bru.internal:8443/services</endpoint>
          <user>bru_cis</user>
          <!-- encrypted by the vendor config tool -->
          <password>{V}</password>
          <pollMinutes>15</pollMinutes>
        </integration>
        """,
    ),
]

# ---------------------------------------------------------------- municipal open data (CKAN, Drupal, Socrata)
TEMPLATES += [
    _t(
        "opendata/ckan/production.ini",
        "t16_urlpw",
        True,
        r"""
        [app:main]
        use = egg:ckan
        ckan.site_url = https://data.pellhamfalls.gov
        ckan.site_id = pellhamfalls
        sqlalchemy.url = postgresql://ckan_default:{V}@pg-ckan01.bru.internal/ckan_default?sslmode=require
        ckan.datastore.write_url = postgresql://ckan_default:{V}@pg-ckan01.bru.internal/datastore_default
        ckan.datastore.read_url = postgresql://datastore_ro:{V2}@pg-ckan01.bru.internal/datastore_default
        solr_url = http://solr01.bru.internal:8983/solr/ckan
        ckan.redis.url = redis://localhost:6379/0
        """,
    ),
    _t(
        "opendata/ckan/ckan.ini",
        "t16_drupal_salt",
        True,
        r"""
        [app:main]
        ckan.site_url = https://data.ashcombe.gov
        beaker.session.key = ckan
        beaker.session.secret = {V}
        api_token.jwt.encode.secret = string:{V2}
        api_token.jwt.decode.secret = string:{V2}
        ckan.auth.create_user_via_web = false
        """,
    ),
    _t(
        "opendata/ckan/ckan.docker.ini",
        "t16_ref_env",
        False,
        r"""
        [app:main]
        ckan.site_url = https://data.westfirth.gov
        beaker.session.secret = {V}
        api_token.jwt.encode.secret = string:{V2}
        ckan.plugins = activity datastore xloader scheming_datasets dcat harvest
        """,
    ),
    _t(
        "opendata/harvest/push_water_quality.py",
        "t16_ckan_jwt",
        True,
        r"""
        import requests

        CKAN = "https://data.pellhamfalls.gov/api/3/action"
        TOKEN = "{V}"


        def update_resource(resource_id: str, path: str) -> None:
            with open(path, "rb") as fh:
                r = requests.post(
                    f"{CKAN}/resource_update",
                    headers={"Authorization": TOKEN},
                    data={"id": resource_id},
                    files={"upload": fh},
                    timeout=120,
                )
            r.raise_for_status()
        """,
    ),
    _t(
        "opendata/harvest/legacy/push_outages_ckan28.py",
        "t16_ckan_key",
        True,
        r"""
        # CKAN 2.8 era script (Dunmere portal still runs 2.8)
        from ckanapi import RemoteCKAN

        dunmere = RemoteCKAN("https://opendata.dunmere.gov", apikey="{V}", user_agent="bru-outage-push/1.2")
        dunmere.action.datastore_upsert(
            resource_id="outage-history", records=load_records(), method="upsert", force=True
        )
        """,
    ),
    _t(
        "opendata/harvest/datasets.yml",
        "t16_uuid",
        False,
        r"""
        datasets:
          - name: water-quality-monthly
            portal: https://data.pellhamfalls.gov
            package_id: {V}
            resource_id: {V2}
          - name: hydrant-locations
            portal: https://data.ashcombe.gov
            package_id: {V3}
            resource_id: {V4}
        """,
    ),
    _t(
        "opendata/ckan/docker/.env",
        "t16_weak",
        True,
        r"""
        CKAN_SITE_URL=https://data.westfirth.gov
        CKAN_SYSADMIN_NAME=ckan_admin
        CKAN_SYSADMIN_PASSWORD={V}
        CKAN_SYSADMIN_EMAIL=opendata@westfirth.gov
        POSTGRES_PASSWORD={V2}
        CKAN_DB_PASSWORD={V3}
        """,
    ),
    _t(
        "opendata/ckan/docker/.env.template",
        "t16_ph",
        False,
        r"""
        CKAN_SITE_URL=http://localhost:5000
        CKAN_SYSADMIN_NAME=ckan_admin
        CKAN_SYSADMIN_PASSWORD={V}
        POSTGRES_PASSWORD={V2}
        """,
    ),
    _t(
        "opendata/drupal/web/sites/default/settings.php",
        "t16_pw",
        True,
        r"""
        <?php

        $databases['default']['default'] = [
          'database' => 'ashcombe_gov',
          'username' => 'drupal',
          'password' => '{V}',
          'host' => 'mysql-web01.bru.internal',
          'port' => '3306',
          'driver' => 'mysql',
          'prefix' => '',
        ];
        $settings['config_sync_directory'] = '../config/sync';
        $settings['trusted_host_patterns'] = ['^www\.ashcombe\.gov$'];
        """,
    ),
    _t(
        "opendata/drupal/web/sites/default/settings.local.php",
        "t16_drupal_salt",
        True,
        r"""
        <?php

        $settings['hash_salt'] = '{V}';
        $settings['file_private_path'] = '/var/www/private';
        $config['system.logging']['error_level'] = 'hide';
        """,
    ),
    _t(
        "opendata/drupal/web/sites/westfirth/settings.php",
        "t16_ref_php",
        False,
        r"""
        <?php

        $databases['default']['default'] = [
          'database' => getenv('DRUPAL_DB_NAME'),
          'username' => getenv('DRUPAL_DB_USER'),
          'password' => {V},
          'host' => getenv('DRUPAL_DB_HOST'),
          'driver' => 'mysql',
        ];
        $settings['hash_salt'] = file_get_contents('/var/www/private/salt.txt');
        """,
    ),
    _t(
        "opendata/drupal/db/users_field_data.sql",
        "t16_drupal_hash",
        False,
        r"""
        INSERT INTO `users_field_data` (`uid`, `langcode`, `name`, `pass`, `mail`, `status`) VALUES
        (1, 'en', 'webmaster', '{V}', 'webmaster@ashcombe.gov', 1),
        (4, 'en', 'clerk.editor', '{V2}', 'clerk@ashcombe.gov', 1);
        """,
    ),
    _t(
        "opendata/socrata/sync_permits.py",
        "t16_ref_py",
        False,
        r"""
        from sodapy import Socrata

        client = Socrata(
            "data.westfirth.gov",
            None,
            username="opendata-bot@westfirth.gov",
            password={V},
        )
        client.replace("w7k2-9xqf", load_permits())
        """,
    ),
    _t(
        "opendata/drupal/auth.json",
        "t16_glpat",
        True,
        r"""
        {
            "gitlab-token": {
                "gitlab.bru.internal": "{V}"
            },
            "gitlab-domains": ["gitlab.bru.internal"]
        }
        """,
    ),
]

# ---------------------------------------------------------------- payment-gateway connectors and lockbox
TEMPLATES += [
    _t(
        "payments/lockbox/keys/bru_lockbox_rsa",
        "t16_privkey",
        True,
        r"""
        {V}
        """,
    ),
    _t(
        "payments/lockbox/keys/bank_public.asc",
        "t16_pgp_pub",
        False,
        r"""
        {V}
        """,
    ),
    _t(
        "payments/connector/src/main/resources/application-prod.yml",
        "t16_braintree",
        True,
        r"""
        payments:
          provider: braintree
          braintree:
            access-token: {V}
          retry:
            max-attempts: 3
            backoff-ms: 2000
        """,
    ),
    _t(
        "payments/connector/src/test/resources/application-test.yml",
        "t16_fake",
        False,
        r"""
        payments:
          provider: braintree
          braintree:
            access-token: {V}
            environment: sandbox
        """,
    ),
    _t(
        "payments/connector/deploy/webhook.env",
        "t16_stripe_whsec",
        True,
        r"""
        STRIPE_WEBHOOK_SECRET={V}
        STRIPE_API_VERSION=2024-06-20
        PORT=8080
        """,
    ),
    _t(
        "payments/connector/README.md",
        "t16_stripe_pk",
        False,
        r"""
        # Payment connector

        The checkout page uses the publishable key below; it is safe to ship in the browser.

        | Environment | Publishable key |
        |-------------|-----------------|
        | Production  | `{V}` |
        | Kiosk       | `{V2}` |

        The secret keys are in Key Vault (`StripeSecretKey`), never in this repository.
        """,
    ),
    _t(
        "payments/connector/config/gateways.json",
        "t16_secretname",
        False,
        r"""
        {
          "gateways": [
            { "name": "stripe", "secretRef": "{V}", "enabled": true },
            { "name": "moneris", "secretRef": "{V2}", "enabled": true },
            { "name": "braintree", "secretRef": "{V3}", "enabled": false }
          ]
        }
        """,
    ),
]

# ---------------------------------------------------------------- Windows and Linux admin scripts
TEMPLATES += [
    _t(
        "ops/windows/Map-GisDrives.ps1",
        "t16_pw",
        True,
        r"""
        # maps the GIS shares on the plotter workstations (run at logon via GPO)
        $secure = ConvertTo-SecureString "{V}" -AsPlainText -Force
        $cred = New-Object System.Management.Automation.PSCredential ("BRU\svc_gisplot", $secure)
        New-PSDrive -Name G -PSProvider FileSystem -Root "\\fs01\gis" -Credential $cred -Persist
        New-PSDrive -Name P -PSProvider FileSystem -Root "\\fs01\plots" -Credential $cred -Persist
        """,
    ),
    _t(
        "ops/windows/Backup-CisDatabase.ps1",
        "t16_dpapi",
        False,
        r"""
        # password exported once with ConvertFrom-SecureString as svc_sqlbackup on SQLCIS01 (DPAPI, this host only)
        $enc = "{V}"
        $pw = ConvertTo-SecureString $enc
        $cred = New-Object System.Management.Automation.PSCredential ("BRU\svc_sqlbackup", $pw)
        Backup-SqlDatabase -ServerInstance "SQLCIS01" -Database "CIS" -BackupFile "\\backup01\sql\CIS_$(Get-Date -f yyyyMMdd).bak" -Credential $cred
        """,
    ),
    _t(
        "ops/windows/Backup-GisDatabase.ps1",
        "t16_ref_ps",
        False,
        r"""
        $pw = {V}
        $env:PGPASSWORD = $pw
        & "C:\Program Files\PostgreSQL\15\bin\pg_dump.exe" -h pg-gis01.bru.internal -U gis_owner -Fc -f "D:\backup\gis_$(Get-Date -f yyyyMMdd).dump" gis
        Remove-Item Env:\PGPASSWORD
        """,
    ),
    _t(
        "ops/windows/map_meterdrop.cmd",
        "t16_ref_cmd",
        False,
        r"""
        @echo off
        rem meter read drop for the MDM import job
        net use M: /delete /y >nul 2>&1
        net use M: \\ami-drop\reads /user:BRU\svc_mdmimport {V} /persistent:no
        robocopy M:\outbound D:\MeterReads\inbox *.csv /MOV /R:2 /W:10
        """,
    ),
    _t(
        "ops/windows/unattend/autounattend.xml",
        "t16_unattend",
        True,
        r"""
        <?xml version="1.0" encoding="utf-8"?>
        <unattend xmlns="urn:schemas-microsoft-com:unattend">
          <settings pass="oobeSystem">
            <component name="Microsoft-Windows-Shell-Setup" processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS">
              <UserAccounts>
                <AdministratorPassword>
                  <Value>{V}</Value>
                  <PlainText>false</PlainText>
                </AdministratorPassword>
              </UserAccounts>
              <TimeZone>GMT Standard Time</TimeZone>
            </component>
          </settings>
        </unattend>
        """,
    ),
    _t(
        "ops/linux/cron/pg_backup_cis.sh",
        "t16_pw",
        True,
        r"""
        #!/bin/bash
        # 02:15 daily, see /etc/cron.d/pg_backup
        export PGPASSWORD='{V}'
        STAMP=$(date +%F)
        pg_dump -h pg-cis01.bru.internal -U backup -Fc cis > /backup/cis/cis_${STAMP}.dump
        find /backup/cis -name '*.dump' -mtime +14 -delete
        """,
    ),
    _t(
        "ops/linux/cron/pg_backup_gis.sh",
        "t16_ref_shell",
        False,
        r"""
        #!/bin/bash
        set -euo pipefail
        export PGPASSWORD={V}
        pg_dump -h pg-gis01.bru.internal -U backup -Fc gis > "/backup/gis/gis_$(date +%F).dump"
        """,
    ),
    _t(
        "ops/linux/etc/shadow.bak",
        "t16_shadow",
        False,
        r"""
        root:{V}:19612:0:99999:7:::
        daemon:*:19480:0:99999:7:::
        gisops:{V2}:19640:0:99999:7:::
        """,
    ),
    _t(
        "ops/linux/ssh/authorized_keys.ops",
        "t16_sshpub",
        False,
        r"""
        # ops jump host keys (reviewed 2024-Q2)
        {V}
        {V2}
        {V3}
        """,
    ),
    _t(
        "ops/linux/nginx/htpasswd.geoserver-admin",
        "t16_apr1",
        False,
        r"""
        gisadmin:{V}
        ashcombe_gis:{V2}
        """,
    ),
    _t(
        "ops/linux/nginx/conf.d/pi-proxy.conf",
        "t16_basic",
        True,
        r"""
        server {
            listen 443 ssl;
            server_name pi-dashboards.bru.internal;

            location /piwebapi/ {
                proxy_pass https://pi-web01.ot.bru.internal/piwebapi/;
                proxy_set_header Authorization "Basic {V}";
                proxy_set_header X-Requested-With XMLHttpRequest;
            }
        }
        """,
    ),
    _t(
        "ops/windows/sql/create_logins.sql",
        "t16_pw",
        True,
        r"""
        USE [master];
        GO
        CREATE LOGIN [portal_app] WITH PASSWORD = N'{V}', CHECK_POLICY = ON, DEFAULT_DATABASE = [CustomerPortal];
        CREATE LOGIN [hist_reader] WITH PASSWORD = N'{V2}', CHECK_EXPIRATION = OFF;
        GO
        """,
    ),
    _t(
        "ops/windows/sql/migrate_logins.sql",
        "t16_mssql_hash",
        False,
        r"""
        -- generated by sp_help_revlogin on SQLCIS01, 2024-03-30
        CREATE LOGIN [portal_app] WITH PASSWORD = {V} HASHED, SID = 0x5F3A1C0E9B7D4A21B8E6C2D4F1A3B5C7, CHECK_POLICY = ON
        CREATE LOGIN [hist_reader] WITH PASSWORD = {V2} HASHED, SID = 0x8C2E4A6B1D3F5A7C9E0B2D4F6A8C0E1B, CHECK_POLICY = OFF
        """,
    ),
    _t(
        "ops/windows/Reset-CrewPassword.ps1",
        "t16_text",
        False,
        r"""
        param([Parameter(Mandatory)] [string] $SamAccountName)

        $new = Read-Host -AsSecureString -Prompt "New password for $SamAccountName"
        Set-ADAccountPassword -Identity $SamAccountName -NewPassword $new -Reset
        Set-ADUser -Identity $SamAccountName -ChangePasswordAtLogon $true
        Write-Host "{V}"
        """,
    ),
]

# ---------------------------------------------------------------- Terraform, Ansible, Kubernetes
TEMPLATES += [
    _t(
        "infra/terraform/envs/prod/terraform.tfvars",
        "t16_pw",
        True,
        r"""
        location             = "uksouth"
        environment          = "prod"
        sql_admin_login      = "bruadmin"
        sql_admin_password   = "{V}"
        postgis_admin_user   = "pgadmin"
        postgis_admin_pass   = "{V2}"
        portal_sku           = "P1v3"
        """,
    ),
    _t(
        "infra/terraform/modules/sql/variables.tf",
        "t16_ph",
        False,
        r"""
        variable "sql_admin_login" {
          type    = string
          default = "bruadmin"
        }

        variable "sql_admin_password" {
          type      = string
          sensitive = true
          default   = "{V}"
        }
        """,
    ),
    _t(
        "infra/terraform/modules/sql/main.tf",
        "t16_ref_tf",
        False,
        r"""
        resource "azurerm_mssql_server" "portal" {
          name                         = "sql-bru-portal-${var.environment}"
          resource_group_name          = var.resource_group_name
          location                     = var.location
          version                      = "12.0"
          administrator_login          = var.sql_admin_login
          administrator_login_password = {V}
          minimum_tls_version          = "1.2"
        }
        """,
    ),
    _t(
        "infra/terraform/envs/prod/provider.tf",
        "t16_azure_secret",
        True,
        r"""
        provider "azurerm" {
          features {}
          subscription_id = "5d2c7e1a-9b3f-4a6d-8e0c-1f2a3b4c5d6e"
          tenant_id       = "a1b2c3d4-e5f6-4789-9abc-def012345678"
          client_id       = "0f9e8d7c-6b5a-4938-a7b6-c5d4e3f2a1b0"
          client_secret   = "{V}"
        }
        """,
    ),
    _t(
        "infra/terraform/envs/dr/provider.tf",
        "t16_aws_tf",
        True,
        r"""
        # DR copy of the meter-data lake in AWS (eu-west-2)
        provider "aws" {
          region     = "eu-west-2"
          {IV}
        }
        """,
    ),
    _t(
        "infra/terraform/envs/prod/terraform.tfstate",
        "t16_azure_key",
        True,
        r"""
        {
          "version": 4,
          "terraform_version": "1.7.5",
          "resources": [
            {
              "mode": "managed",
              "type": "azurerm_storage_account",
              "name": "meterdata",
              "instances": [
                {
                  "attributes": {
                    "name": "brumeterdata",
                    "primary_access_key": "{V}",
                    "primary_blob_endpoint": "https://brumeterdata.blob.core.windows.net/"
                  }
                }
              ]
            }
          ]
        }
        """,
    ),
    _t(
        "infra/terraform/envs/prod/.terraform.lock.hcl",
        "t16_h1",
        False,
        r"""
        # This file is maintained automatically by "terraform init".
        provider "registry.terraform.io/hashicorp/azurerm" {
          version     = "3.104.0"
          constraints = "~> 3.100"
          hashes = [
            "{V}",
            "{V2}",
          ]
        }
        """,
    ),
    _t(
        "infra/ansible/inventories/ot/hosts.ini",
        "t16_pw",
        True,
        r"""
        [historians]
        pi-das01.ot.bru.internal
        pi-web01.ot.bru.internal

        [historians:vars]
        ansible_connection=winrm
        ansible_winrm_transport=ntlm
        ansible_user=BRU\svc_ansible_ot
        ansible_password={V}
        ansible_winrm_server_cert_validation=ignore
        """,
    ),
    _t(
        "infra/ansible/inventories/ot/group_vars/all/vault.yml",
        "t16_vault",
        False,
        r"""
        {V}
        """,
    ),
    _t(
        "infra/ansible/inventories/ot/group_vars/all/main.yml",
        "t16_ref_ansible",
        False,
        r"""
        geoserver_admin_user: admin
        geoserver_admin_password: {V}
        mqtt_bridge_user: dmz_bridge
        mqtt_bridge_password: {V2}
        pi_admin_password: {V3}
        """,
    ),
    _t(
        "infra/ansible/roles/geoserver/defaults/main.yml",
        "t16_weak",
        True,
        r"""
        ---
        geoserver_version: "2.24.2"
        geoserver_data_dir: /srv/geoserver/data
        geoserver_admin_user: admin
        geoserver_admin_password: "{V}"
        geoserver_java_opts: "-Xms2g -Xmx4g"
        """,
    ),
    _t(
        "infra/ansible/roles/ckan/tasks/sysadmin.yml",
        "t16_ref_ansible",
        False,
        r"""
        - name: Create CKAN sysadmin
          ansible.builtin.command: >
            ckan -c /etc/ckan/default/ckan.ini sysadmin add ckan_admin
            email=opendata@bru-utilities.net password={V}
          args:
            creates: /var/lib/ckan/.sysadmin_created
          become: true
          become_user: ckan
        """,
    ),
    _t(
        "infra/ansible/roles/mosquitto/vars/main.yml",
        "t16_ref_ansible",
        False,
        r"""
        mosquitto_users:
          - name: telegraf
            password: {V}
          - name: nodered
            password: {V2}
        """,
    ),
    _t(
        "infra/k8s/portal/portal-secret.yaml",
        "t16_b64pw",
        True,
        r"""
        apiVersion: v1
        kind: Secret
        metadata:
          name: portal-db
          namespace: customer-portal
        type: Opaque
        data:
          username: cG9ydGFsX2FwcA==
          password: {V}
        """,
    ),
    _t(
        "infra/k8s/portal/deployment.yaml",
        "t16_secretname",
        False,
        r"""
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: customer-portal
        spec:
          template:
            spec:
              containers:
                - name: web
                  image: acrbru.azurecr.io/customer-portal:2024.06.3
                  env:
                    - name: ConnectionStrings__Portal
                      valueFrom:
                        secretKeyRef:
                          name: {V}
                          key: connection-string
        """,
    ),
    _t(
        "infra/k8s/portal/sealed-portal-db.yaml",
        "t16_sealed",
        False,
        r"""
        apiVersion: bitnami.com/v1alpha1
        kind: SealedSecret
        metadata:
          name: portal-db
          namespace: customer-portal
        spec:
          encryptedData:
            password: {V}
        """,
    ),
]

# ---------------------------------------------------------------- CI (Azure DevOps, GitLab CI)
TEMPLATES += [
    _t(
        "portal/azure-pipelines.yml",
        "t16_ref_dotnet",
        False,
        r"""
        trigger:
          branches: { include: [ main ] }

        variables:
          - group: portal-prod
          - name: buildConfiguration
            value: Release

        steps:
          - task: DotNetCoreCLI@2
            inputs: { command: publish, projects: 'src/Bru.CustomerPortal/*.csproj', arguments: '-c $(buildConfiguration)' }
          - task: AzureWebApp@1
            inputs:
              azureSubscription: 'sc-bru-portal-prod'
              appName: 'app-bru-portal-prod'
              appSettings: >-
                -ConnectionStrings__Portal "{V}"
                -Stripe__SecretKey "{V2}"
        """,
    ),
    _t(
        "gis/azure-pipelines-publish.yml",
        "t16_pw",
        True,
        r"""
        pool:
          name: gis-agents

        variables:
          ARCGIS_PORTAL: https://gis.bru.internal/portal
          ARCGIS_PUBLISHER_USER: svc_publisher
          ARCGIS_PUBLISHER_PASSWORD: '{V}'

        steps:
          - script: |
              "C:\Program Files\ArcGIS\Pro\bin\Python\scripts\propy.bat" scripts\publish_services.py ^
                --portal %ARCGIS_PORTAL% --user %ARCGIS_PUBLISHER_USER% --password %ARCGIS_PUBLISHER_PASSWORD%
            displayName: Publish water services
        """,
    ),
    _t(
        "ops/gitlab-runner/register.sh",
        "t16_glrt",
        True,
        r"""
        #!/bin/sh
        # registers the OT-DMZ shell runner (one-time)
        gitlab-runner register --non-interactive \
          --url https://gitlab.bru.internal \
          --token {V} \
          --executor shell \
          --description "ot-dmz-runner-01"
        """,
    ),
    _t(
        "opendata/drupal/.gitlab-ci.yml",
        "t16_ref_gitlab",
        False,
        r"""
        stages: [build, deploy]

        build:
          stage: build
          image: composer:2
          script:
            - composer config gitlab-token.gitlab.bru.internal {V}
            - composer install --no-dev --optimize-autoloader

        deploy:
          stage: deploy
          script:
            - rsync -az --delete web/ deploy@web01.bru.internal:/var/www/ashcombe/web/
          environment: production
        """,
    ),
    _t(
        "billing/.gitlab-ci.yml",
        "t16_sonar",
        True,
        r"""
        variables:
          SONAR_HOST_URL: https://sonar.bru.internal
          SONAR_TOKEN: "{V}"
          MAVEN_OPTS: "-Dmaven.repo.local=.m2/repository"

        sonar:
          stage: test
          image: maven:3.9-eclipse-temurin-21
          script:
            - mvn -B verify sonar:sonar -Dsonar.projectKey=bru-cis-core
        """,
    ),
    _t(
        "ci/templates/deploy-drupal.yml",
        "t16_secretname",
        False,
        r"""
        parameters:
          - name: site
            type: string

        steps:
          - task: AzureKeyVault@2
            inputs:
              azureSubscription: sc-bru-web
              KeyVaultName: kv-bru-web
              SecretsFilter: '{V}'
          - script: drush --root=web/sites/${{ parameters.site }} deploy -y
        """,
    ),
    _t(
        "mobile/meter_reader/.npmrc",
        "t16_ado_pat_b64",
        True,
        r"""
        registry=https://pkgs.dev.azure.com/brennmoor/_packaging/bru-npm/npm/registry/
        always-auth=true
        ; begin auth token
        //pkgs.dev.azure.com/brennmoor/_packaging/bru-npm/npm/registry/:username=brennmoor
        //pkgs.dev.azure.com/brennmoor/_packaging/bru-npm/npm/registry/:_password={V}
        //pkgs.dev.azure.com/brennmoor/_packaging/bru-npm/npm/registry/:email=npm requires email to be set but doesn't use the value
        ; end auth token
        """,
    ),
    _t(
        "mobile/fieldcrew-android/azure-pipelines-release.yml",
        "t16_ref_ado",
        False,
        r"""
        variables:
          keystoreFile: fieldcrew-release.jks
          keystorePassword: {V}
          keyAlias: fieldcrew

        steps:
          - task: Gradle@3
            inputs:
              tasks: ':app:bundleRelease'
          - task: AndroidSigning@3
            inputs:
              apkFiles: '**/*.aab'
              apksignerKeystoreFile: $(keystoreFile)
              apksignerKeystorePassword: $(keystorePassword)
              apksignerKeystoreAlias: $(keyAlias)
              apksignerKeyPassword: $(keystorePassword)
        """,
    ),
    _t(
        "ci/docker/config.json",
        "t16_docker_auth",
        True,
        r"""
        {
          "auths": {
            "acrbru.azurecr.io": {
              "auth": "{V}"
            }
          },
          "HttpHeaders": { "User-Agent": "Docker-Client/24.0.7 (linux)" }
        }
        """,
    ),
    _t(
        "ci/variables/common.yml",
        "t16_uuid",
        False,
        r"""
        variables:
          azureSubscriptionId: '{V}'
          azureTenantId: '{V2}'
          serviceConnectionId: '{V3}'
          buildAgentPool: bru-linux
        """,
    ),
    _t(
        "ci/scripts/notify-teams.sh",
        "t16_teams",
        True,
        r"""
        #!/bin/bash
        # posts the deployment result to the "Portal releases" Teams channel
        WEBHOOK="{V}"
        curl -s -H 'Content-Type: application/json' \
          -d "{\"text\": \"Portal ${BUILD_BUILDNUMBER} deployed: ${AGENT_JOBSTATUS}\"}" \
          "$WEBHOOK"
        """,
    ),
    _t(
        "ot/.gitlab-ci.yml",
        "t16_slackhook",
        True,
        r"""
        stages: [lint, deploy]

        variables:
          OT_ALERTS_WEBHOOK: "{V}"

        deploy_nodered_flows:
          stage: deploy
          script:
            - ./scripts/deploy_flows.sh
          after_script:
            - 'curl -s -X POST -H "Content-type: application/json" --data "{\"text\":\"Node-RED flows deployed by $GITLAB_USER_LOGIN\"}" "$OT_ALERTS_WEBHOOK"'
          only: [main]
        """,
    ),
    _t(
        "gis/.gitlab-ci.yml",
        "t16_ref_gitlab",
        False,
        r"""
        publish_geoserver_styles:
          stage: deploy
          image: curlimages/curl:8.7.1
          script:
            - for sld in styles/*.sld; do
                curl -sf -u "admin:{V}" -XPUT -H "Content-type: application/vnd.ogc.sld+xml"
                  --data-binary @"$sld" "https://maps.bru.internal/geoserver/rest/styles/$(basename $sld .sld)";
              done
        """,
    ),
]

# ---------------------------------------------------------------- runbooks (Markdown, Word-export HTML)
TEMPLATES += [
    _t(
        "docs/runbooks/historian-failover.md",
        "t16_pw",
        True,
        r"""
        # PI historian failover (PIDA01 -> PIDA02)

        1. RDP to `pi-das02.ot.bru.internal` as `BRU\piadmin` (password: `{V}`).
        2. Open *PI System Management Tools* > *Collective Manager*.
        3. Promote PIDA02 to primary; confirm the buffer queues on the interface nodes drain.
        4. Tell the control room (ext. 4410) that trends may gap for up to 5 minutes.
        """,
    ),
    _t(
        "docs/runbooks/geoserver-restart.md",
        "t16_ref_shell",
        False,
        r"""
        # GeoServer restart

        ```bash
        export GS_PASS={V}
        curl -u "admin:$GS_PASS" -XPOST https://maps.bru.internal/geoserver/rest/reload
        sudo systemctl restart geoserver
        ```

        If the admin password was rotated, update the `geoserver-admin` entry in Vault first.
        """,
    ),
    _t(
        "docs/runbooks/export/SCADA-Gateway-Access.htm",
        "t16_pw",
        True,
        r"""
        <html xmlns:o="urn:schemas-microsoft-com:office:office" xmlns:w="urn:schemas-microsoft-com:office:word">
        <head><meta name=Generator content="Microsoft Word 15"><title>SCADA gateway access</title></head>
        <body lang=EN-GB style='tab-interval:36.0pt'>
        <div class=WordSection1>
        <p class=MsoNormal><b><span style='font-size:14.0pt'>SCADA gateway (Westfirth WTP)</span></b></p>
        <p class=MsoNormal>Web console: https://10.90.4.1:8443<o:p></o:p></p>
        <p class=MsoNormal>User: <span style='font-family:Consolas'>otadmin</span><o:p></o:p></p>
        <p class=MsoNormal>Password: <span style='font-family:Consolas'>{V}</span><o:p></o:p></p>
        <p class=MsoNormal>Modbus TCP gateway (read only): user <span style='font-family:Consolas'>modbus_ro</span>,
        password <span style='font-family:Consolas'>{V2}</span><o:p></o:p></p>
        </div>
        </body>
        </html>
        """,
    ),
    _t(
        "docs/runbooks/export/SCADA-Gateway-Access-sanitised.htm",
        "t16_ph",
        False,
        r"""
        <html xmlns:o="urn:schemas-microsoft-com:office:office">
        <body lang=EN-GB>
        <div class=WordSection1>
        <p class=MsoNormal>Web console: https://10.90.4.1:8443<o:p></o:p></p>
        <p class=MsoNormal>User: <span style='font-family:Consolas'>otadmin</span><o:p></o:p></p>
        <p class=MsoNormal>Password: <span style='font-family:Consolas'>{V}</span> (OT safe, entry &quot;WTP gateway&quot;)<o:p></o:p></p>
        </div>
        </body>
        </html>
        """,
    ),
    _t(
        "docs/runbooks/export/AMI-Collector-Commissioning.htm",
        "t16_weak",
        True,
        r"""
        <html xmlns:o="urn:schemas-microsoft-com:office:office">
        <body lang=EN-US>
        <div class=WordSection1>
        <h1>AMI collector commissioning</h1>
        <p class=MsoListParagraph>1.<span style='mso-tab-count:1'> </span>Connect to the collector LAN port (192.168.10.1).</p>
        <p class=MsoListParagraph>2.<span style='mso-tab-count:1'> </span>Log in as <b>admin</b> / <b>{V}</b> (we have not changed it on the Dunmere units yet).</p>
        <p class=MsoListParagraph>3.<span style='mso-tab-count:1'> </span>Set the head-end address to headend01.ami.bru.internal:4059.</p>
        </div>
        </body>
        </html>
        """,
    ),
    _t(
        "docs/policies/password-standard.md",
        "t16_sizeval",
        False,
        r"""
        # BRU password standard (IT and OT)

        | Control | Value |
        |---------|-------|
        | Minimum length, corporate IT | {V} |
        | Minimum length, OT / SCADA | {V2} |
        | Maximum age (days), corporate IT | {V3} |
        | Lockout threshold | 5 (n/a on HMIs) |

        Shared OT passwords are kept in the OT password safe and rotated after staff changes.
        """,
    ),
    _t(
        "docs/support/portal-login-errors.md",
        "t16_text",
        False,
        r"""
        # Customer portal: login error messages

        | Code | Message shown to the customer |
        |------|-------------------------------|
        | AUTH-01 | {V} |
        | AUTH-04 | {V2} |

        Agents must never ask for the customer's password; reset it from the back office instead.
        """,
    ),
    _t(
        "docs/opendata/ckan-api-howto.md",
        "t16_docpw",
        False,
        r"""
        # Using the CKAN API (council staff)

        Example with the demo instance:

        ```
        ckanapi action package_search q=water -r https://demo.ckan.example.org -u demo_editor -p {V}
        ```

        Your own API token is under *User > API Tokens* on the portal; do not share it.
        """,
    ),
    _t(
        "docs/runbooks/certificate-renewal.md",
        "t16_fingerprint",
        False,
        r"""
        # Certificate renewal: customer portal and MQTT brokers

        | Host | Expires | SHA-1 fingerprint |
        |------|---------|-------------------|
        | myaccount.bru-utilities.net | 2025-03-14 | {V} |
        | mqtt-ent01.bru.internal | 2025-07-01 | {V2} |

        After renewal, update the pins in the field app (`network_security_config.xml`).
        """,
    ),
    _t(
        "docs/runbooks/export/Meter-Key-Rotation.htm",
        "t16_systitle",
        False,
        r"""
        <html xmlns:o="urn:schemas-microsoft-com:office:office">
        <body lang=EN-GB>
        <div class=WordSection1>
        <p class=MsoNormal><b>Meter key rotation - pilot batch</b></p>
        <table class=MsoTableGrid border=1>
        <tr><td>Meter</td><td>System title</td><td>Key version</td></tr>
        <tr><td>LGZ-44017201</td><td>{V}</td><td>3 -&gt; 4</td></tr>
        <tr><td>LGZ-44017202</td><td>{V2}</td><td>3 -&gt; 4</td></tr>
        </table>
        <p class=MsoNormal>New keys are generated by the KMS and never leave the head-end.</p>
        </div>
        </body>
        </html>
        """,
    ),
    _t(
        "docs/runbooks/mqtt-bridge.md",
        "t16_urlpw",
        True,
        r"""
        # MQTT bridge troubleshooting

        Subscribe to everything the DMZ bridge forwards:

        ```bash
        mosquitto_sub -L 'mqtts://dmz_bridge:{V}@mqtt-ent01.bru.internal:8883/bru/plant/#' \
          --cafile /etc/mosquitto/ca/bru-ca.crt -v
        ```

        If nothing arrives, check `systemctl status mosquitto` on dmz-mqtt01.
        """,
    ),
    _t(
        "docs/releases/2024-06.md",
        "t16_gitsha",
        False,
        r"""
        # June 2024 release

        - customer-portal `2024.06.3` built from `{V}`
        - cis-core `5.12.0` built from `{V2}`
        - fieldcrew-android `3.8.1` built from `{V3}`
        """,
    ),
    _t(
        "docs/runbooks/export/Outage-Comms.htm",
        "t16_acct",
        False,
        r"""
        <html xmlns:o="urn:schemas-microsoft-com:office:office">
        <body lang=EN-US>
        <div class=WordSection1>
        <p class=MsoNormal>Test accounts for outage SMS (internal phones only):</p>
        <p class=MsoNormal>Account number: {V}<o:p></o:p></p>
        <p class=MsoNormal>Account number: {V2}<o:p></o:p></p>
        <p class=MsoNormal>Log in to the portal with your own BRU SSO account; test customers have no password.</p>
        </div>
        </body>
        </html>
        """,
    ),
]

# ---------------------------------------------------------------- additions (mixed areas)
TEMPLATES += [
    _t(
        "ops/windows/Upload-BillPdfs.ps1",
        "t16_sas",
        True,
        r"""
        # nightly: push rendered bill PDFs to the portal storage account (container-scoped SAS)
        $sas = "{V}"
        $src = "D:\BillPrint\out\$(Get-Date -Format yyyyMMdd)\*.pdf"
        & "C:\Tools\azcopy.exe" copy $src "https://bruportalprod.blob.core.windows.net/bill-pdfs?$sas" --overwrite=ifSourceNewer
        if ($LASTEXITCODE -ne 0) { throw "azcopy failed with $LASTEXITCODE" }
        """,
    ),
    _t(
        "billing/outage-notifier/scripts/send_outage_email.py",
        "t16_sendgrid",
        True,
        r"""
        from sendgrid import SendGridAPIClient
        from sendgrid.helpers.mail import Mail

        sg = SendGridAPIClient("{V}")


        def send(to: str, area: str, eta: str) -> None:
            msg = Mail(
                from_email="outages@bru-utilities.net",
                to_emails=to,
                subject=f"Planned water outage in {area}",
                html_content=f"<p>Supply in {area} will be off until {eta}.</p>",
            )
            sg.send(msg)
        """,
    ),
    _t(
        "ot/grafana/scripts/export_dashboards.sh",
        "t16_grafana",
        True,
        r"""
        #!/bin/bash
        # backs up every OT dashboard as JSON (service account "backup", Viewer role)
        GRAFANA=https://grafana-ot.bru.internal
        TOKEN={V}
        for uid in $(curl -s -H "Authorization: Bearer $TOKEN" "$GRAFANA/api/search?type=dash-db" | jq -r '.[].uid'); do
          curl -s -H "Authorization: Bearer $TOKEN" "$GRAFANA/api/dashboards/uid/$uid" > "/backup/grafana/$uid.json"
        done
        """,
    ),
    _t(
        "portal/src/Bru.CustomerPortal/keys/sso-signing-public.pem",
        "t16_pubkey",
        False,
        r"""
        {V}
        """,
    ),
    _t(
        "infra/ansible/roles/pi_interface/tasks/main.yml",
        "t16_sha256",
        False,
        r"""
        - name: Download PI Interface for Modbus Ethernet
          ansible.windows.win_get_url:
            url: https://files.bru.internal/vendor/aveva/PI_ModbusE_4.2.1.10.exe
            dest: C:\Install\PI_ModbusE.exe
            checksum: {V}
            checksum_algorithm: sha256

        - name: Download PI Buffer Subsystem
          ansible.windows.win_get_url:
            url: https://files.bru.internal/vendor/aveva/PIBufss_4.9.0.exe
            dest: C:\Install\PIBufss.exe
            checksum: {V2}
            checksum_algorithm: sha256
        """,
    ),
    _t(
        "ot/mosquitto/ca/bru-ca.crt",
        "t16_cert",
        False,
        r"""
        {V}
        """,
    ),
    _t(
        "gis/arcgis/scripts/item_ids.py",
        "t16_md5",
        False,
        r"""
        # ArcGIS Enterprise item ids (Portal > item page > URL ?id=...)
        ITEMS = {
            "hydrants": "{V}",
            "water_mains": "{V2}",
            "outage_polygons": "{V3}",
        }
        """,
    ),
    _t(
        "portal/src/Bru.CustomerPortal/wwwroot/js/i18n/messages.json",
        "t16_text",
        False,
        r"""
        {
          "login.title": "Sign in to My Account",
          "login.password.label": "Password",
          "login.password.error": "{V}",
          "reset.password.help": "{V2}"
        }
        """,
    ),
    _t(
        "mobile/fieldcrew-ios/FieldCrewTests/APIStubs.swift",
        "t16_fake",
        False,
        r"""
        @testable import FieldCrew

        enum APIStubs {
            static let serviceToken = "{V}"
            static let crewPassword = "{V2}"

            static func configure() {
                OutageAPI.overrideToken(serviceToken)
            }
        }
        """,
    ),
    _t(
        "ami/headend/rest/config.example.toml",
        "t16_ph",
        False,
        r"""
        [headend]
        base_url = "https://rni.example/api/v1"
        api_key = "{V}"
        timeout_s = 60

        [mdm]
        inbox = "/srv/mdm/inbox"
        """,
    ),
    _t(
        "infra/terraform/envs/prod/keyvault.tf",
        "t16_secretname",
        False,
        r"""
        data "azurerm_key_vault" "ops" {
          name                = "kv-bru-ops"
          resource_group_name = "rg-bru-security"
        }

        data "azurerm_key_vault_secret" "sql_admin" {
          name         = "{V}"
          key_vault_id = data.azurerm_key_vault.ops.id
        }

        data "azurerm_key_vault_secret" "lockbox" {
          name         = "{V2}"
          key_vault_id = data.azurerm_key_vault.ops.id
        }
        """,
    ),
]
