"""Blind part ``heldout18``: the IT department of a mid-sized city government, the City of
Marisol Bay / Ciudad de Bahía Marisol (domain ``marisolbay.gov``, internal ``cmb.local``). Files
are the resident services portal (Django, Rails, Node/TypeScript), permits and licensing (Java
Spring, .NET, an old PHP app, Stripe-like payment gateway for fees), parking and traffic sensors
(Go and Rust collectors, MQTT brokers, SNMP polling of signal controllers, Kubernetes), the public
library system (Koha-like Perl/SQL, SIP2 self-checkout, Ruby jobs), the 311 call centre (Twilio,
Salesforce-like CRM, IVR config, C# integrations), the GIS and open-data platform (ArcGIS and
Socrata-style portals, PostGIS, Python ETL, Terraform on Azure and AWS), payroll on a legacy
mainframe bridge (COBOL copybook comments, JCL, RACF service ids, Kotlin and Java MQ bridges,
PowerShell), and police and fire dispatch integrations (CAD interfaces, NCIC-ish gateways,
webhooks), plus CI pipelines, Dockerfiles, Helm values, Ansible, tests and fixtures, runbooks
and handover notes in English and Spanish, i18n catalogues and logs. Written blind (without
seeing the scanner, its rules or other parts' templates).

Look-alikes sit in the same kinds of files under the same key names: references to environment
variables and secret stores in each language, placeholders in English and Spanish, password
hashes, encrypted values, public keys and certificates, identifiers shaped like secrets (permit
numbers, parcel APNs, 311 service request numbers, library barcodes, ArcGIS item ids, sensor
serials, incident numbers, mainframe dataset names, UUIDs, digests), UI text about passwords,
redacted values and credentials documented on example hosts.
"""

from __future__ import annotations

import base64
import hashlib
import string
import urllib.parse

import evalset

MULTI_SLOT = True

HEX = "0123456789abcdef"
HEXU = "0123456789ABCDEF"
DIGITS = string.digits
ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
UPNUM = string.ascii_uppercase + string.digits
LOWNUM = string.ascii_lowercase + string.digits
CRYPT64 = "./" + ALNUM


class Heldout18Values(evalset.Values):
    """Value generators of the heldout18 part; every name starts with ``h18_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "marisol",
            "boardwalk",
            "lighthouse",
            "pelican",
            "seawall",
            "plaza",
            "alcalde",
            "biblioteca",
            "tranvia",
            "bayfront",
            "civic",
            "semaforo",
            "harbor",
            "mirador",
        ]
        self.users = [
            "portal_app",
            "permits_svc",
            "parking_ro",
            "ils_koha",
            "svc311",
            "gis_etl",
            "payroll_br",
            "cad_link",
            "opendata",
            "sensor_ingest",
        ]

    # ------------------------------------------------------------------ positives: passwords
    def h18_pw(self) -> str:
        shape = self.rng.randrange(6)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*.$"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(12, 22), ALNUM + "!#%^*-_=+.@"
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}-{other}-{self.s(3, DIGITS)}"
        if shape == 3:
            return "Cmb" + self.s(13, ALNUM) + self.pick(list("!#%"))
        if shape == 4:
            return self.s(20, ALNUM)
        leet = word.replace("a", "4").replace("o", "0").replace("i", "1")
        return leet.capitalize() + "$" + self.s(4, DIGITS)

    def h18_weak_pw(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(
                [
                    "CityHall1!",
                    "Marisol123",
                    "Permits2023",
                    "Library1",
                    "Welcome2024!",
                    "Contrasena1",
                    "Bahia2022",
                    "Dispatch911",
                    "P@ssw0rd311",
                ]
            )
        if shape == 1:
            return "Marisol" + str(self.rng.randrange(2016, 2026)) + self.pick(["", "!", "#", "$"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2025", "!"])
        return self.pick(["Verano", "Invierno", "Summer", "Winter", "Otono"]) + str(
            self.rng.randrange(2019, 2026)
        )

    def h18_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(5, DIGITS)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(14, 24), ALNUM + "-_.~")

    def h18_racf_pw(self) -> str:
        # RACF / mainframe passwords: 8 characters, upper case, digits and national characters.
        return self.s(1, string.ascii_uppercase) + self.s(7, UPNUM + "#@$")

    def h18_basic(self) -> str:
        user = self.pick(self.users)
        return base64.b64encode(f"{user}:{self.h18_pw()}".encode()).decode()

    def h18_snmp_community(self) -> str:
        return self.pick(["cmbSig", "trfc", "semaf"]) + self.s(self.rng.randrange(10, 16), ALNUM)

    def h18_mqtt_pw(self) -> str:
        if self.rng.randrange(2):
            return self.s(28, ALNUM)
        return "-".join(self.pick(self.words) for _ in range(3)) + "-" + self.s(4, DIGITS)

    def h18_sip2_pw(self) -> str:
        return self.pick(self.words)[:4] + self.s(6, LOWNUM)

    # ------------------------------------------------------------------ positives: keys, tokens
    def h18_api_key(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.s(32, ALNUM)
        if shape == 1:
            return self.s(40, HEX)
        if shape == 2:
            return "cmb_" + self.pick(["live", "prod"]) + "_" + self.s(36, ALNUM)
        return self.s(8, HEX) + "-" + self.s(24, URLSAFE)

    def h18_hex_secret(self) -> str:
        return self.s(self.pick([32, 48, 64]), HEX)

    def h18_arcgis_key(self) -> str:
        return "AAPK" + self.s(32, HEX) + self.s(64, URLSAFE)

    def h18_twilio_token(self) -> str:
        return self.s(32, HEX)

    def h18_jwt_secret(self) -> str:
        return base64.b64encode(self.rng.randbytes(self.pick([32, 48, 64]))).decode()

    def h18_uri(self) -> str:
        user = self.pick(self.users)
        pw = urllib.parse.quote(self.h18_url_pw(), safe="")
        scheme, host, tail = self.rng.choice(
            [
                ("postgresql", "pg-permits.cmb.local:5432", "/permits"),
                ("postgres", "gisdb01.cmb.local:5432", "/opendata?sslmode=require"),
                ("mysql", "ils-db.cmb.local:3306", "/koha_cmb"),
                ("amqp", "rabbit.cmb.local:5672", "/%2Fcad"),
                ("redis", "redis-portal.cmb.local:6379", "/0"),
                ("mongodb", "mongo-311.cmb.local:27017", "/srlog?authSource=admin"),
                ("mssql", "sqlpay01.cmb.local:1433", "/PAYROLL"),
            ]
        )
        return f"{scheme}://{user}:{pw}@{host}{tail}"

    def h18_mssql_conn(self) -> str:
        user = self.pick(self.users)
        host = self.pick(["SQLPAY01", "sql-permits.cmb.local", "CMB-SQL-AG1,1433"])
        db = self.pick(["Permits", "PayrollBridge", "CRM311", "Parking"])
        return f"Server={host};Database={db};User Id={user};Password={self.h18_pw()};TrustServerCertificate=True"

    def h18_azure_conn(self) -> str:
        account = self.pick(["cmbopendata", "cmbgisraster", "cmbportalblob"])
        key = base64.b64encode(self.rng.randbytes(64)).decode()
        return (
            f"DefaultEndpointsProtocol=https;AccountName={account};AccountKey={key};"
            "EndpointSuffix=core.windows.net"
        )

    def h18_sas(self) -> str:
        sig = urllib.parse.quote(base64.b64encode(self.rng.randbytes(32)).decode(), safe="")
        return f"sv=2022-11-02&ss=b&srt=co&sp=rl&se=2026-06-30T04:00:00Z&st=2025-01-01T00:00:00Z&spr=https&sig={sig}"

    def h18_pd_key(self) -> str:
        return self.pick(["u+", "y_", "e+"]) + self.s(18, URLSAFE)

    def h18_rsa(self) -> str:
        return self.pem("RSA PRIVATE KEY", self.rng.randrange(9, 14))

    def h18_webhook(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.slack_webhook()
        if shape == 1:
            return self.teams_webhook()
        return self.discord_webhook()

    def h18_vendor_token(self) -> str:
        return self.pick(
            [
                self.github(),
                self.gitlab(),
                self.slack(),
                self.sendgrid(),
                self.stripe(),
                self.google(),
                self.npm(),
                self.newrelic(),
                self.twilio_sk(),
                self.vault_token(),
                self.databricks(),
                self.github_fine(),
            ]
        )

    # ------------------------------------------------------------------ negatives
    def h18_placeholder(self) -> str:
        return self.pick(
            [
                "<tu-contraseña>",
                "CAMBIAR_ESTO",
                "su_clave_aqui",
                "changeme",
                "<password>",
                "REPLACE_WITH_REAL_KEY",
                "xxxxxxxxxxxxxxxx",
                "********",
                "${DB_PASSWORD}",
                "{{ vault_permits_db_password }}",
                "TBD",
                "<pedir a Seguridad TI>",
                "your-api-key",
                "none",
            ]
        )

    def h18_redacted(self) -> str:
        return self.pick(
            [
                "[REDACTED]",
                "****",
                "<redactado>",
                "***OCULTO***",
                "[filtered]",
                "xxxx-xxxx-xxxx",
                "(omitido)",
                "•••••••",
            ]
        )

    def h18_shell_ref(self) -> str:
        return self.pick(
            [
                "${PERMITS_DB_PASSWORD}",
                "$SRV311_TOKEN",
                '"$(vault kv get -field=password secret/cmb/payroll)"',
                "${GIS_API_KEY:?missing}",
                '"$(cat /run/secrets/cad_api_key)"',
                '"$(aws secretsmanager get-secret-value --secret-id cmb/ils --query SecretString --output text)"',
                "${PARKING_MQTT_PASS:-}",
            ]
        )

    def h18_py_ref(self) -> str:
        return self.pick(
            [
                'os.environ["PERMITS_DB_PASSWORD"]',
                'os.getenv("ARCGIS_API_KEY")',
                'env("DJANGO_SECRET_KEY")',
                "settings.TWILIO_AUTH_TOKEN",
                'keyring.get_password("cmb-gis", "gis_etl")',
                'secrets_client.get_secret_value(SecretId="cmb/opendata")["SecretString"]',
                'config("SOCRATA_SECRET")',
            ]
        )

    def h18_js_ref(self) -> str:
        return self.pick(
            [
                "process.env.PORTAL_SESSION_SECRET",
                "process.env['SRV311_API_KEY']",
                "config.get('payments.secretKey')",
                "import.meta.env.VITE_MAPS_TOKEN",
                "await getSecret('cmb/portal/stripe')",
                "env.CAD_WEBHOOK_SECRET ?? ''",
            ]
        )

    def h18_java_ref(self) -> str:
        return self.pick(
            [
                'System.getenv("PAYROLL_MQ_PASSWORD")',
                'env.getProperty("permits.db.password")',
                'props.getProperty("racf.password")',
                'vault.read("secret/cmb/payroll").getData().get("password")',
                "this.properties.getPassword()",
            ]
        )

    def h18_cs_ref(self) -> str:
        return self.pick(
            [
                'Environment.GetEnvironmentVariable("CRM311_CLIENT_SECRET")',
                'Configuration["Cad:ApiKey"]',
                '_config.GetConnectionString("Permits")',
                '(await secretClient.GetSecretAsync("cad-api-key")).Value.Value',
                "options.Value.Password",
            ]
        )

    def h18_conf_ref(self) -> str:
        return self.pick(
            [
                "${PERMITS_DB_PASSWORD}",
                "${env:CAD_API_KEY}",
                "{{ .Values.secrets.dbPassword }}",
                "%(PAYROLL_PASS)s",
                "ENC(k9Vw3Q0yTt1r6m2fZl8mJw==)",
                "${vault:secret/data/cmb/ils#password}",
                "#{ENV['LIBRARY_SMTP_PASS']}",
                "@Microsoft.KeyVault(SecretUri=https://kv-cmb-prod.vault.azure.net/secrets/crm311/)",
            ]
        )

    def h18_hash(self) -> str:
        shape = self.rng.randrange(5)
        if shape == 0:
            return self.bcrypt()
        if shape == 1:
            return self.argon2()
        if shape == 2:
            return self.sha512crypt()
        if shape == 3:
            return self.pbkdf2_django()
        return "{SSHA}" + base64.b64encode(self.rng.randbytes(24)).decode()

    def h18_digest(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return hashlib.sha256(self.rng.randbytes(16)).hexdigest()
        if shape == 1:
            return "sha256:" + hashlib.sha256(self.rng.randbytes(16)).hexdigest()
        if shape == 2:
            return self.s(40, HEX)
        return hashlib.md5(self.rng.randbytes(16)).hexdigest()

    def h18_uuid(self) -> str:
        return self.request_id()

    def h18_permit_no(self) -> str:
        kind = self.pick(["BLD", "ELE", "PLM", "ROW", "SGN", "FIR", "LIC"])
        return f"{kind}-{self.rng.randrange(2018, 2026)}-{self.s(6, DIGITS)}"

    def h18_apn(self) -> str:
        return f"{self.s(3, DIGITS)}-{self.s(3, DIGITS)}-{self.s(2, DIGITS)}"

    def h18_sr_number(self) -> str:
        return f"SR{self.rng.randrange(24, 26)}-{self.s(7, DIGITS)}"

    def h18_barcode(self) -> str:
        return "3" + self.s(4, DIGITS) + "00" + self.s(7, DIGITS)

    def h18_item_id(self) -> str:
        return self.s(32, HEX)

    def h18_sensor_serial(self) -> str:
        return self.pick(["TS", "PKS", "LPR", "VDS"]) + "-" + self.s(12, HEXU)

    def h18_incident(self) -> str:
        return f"{self.pick(['F', 'P', 'E'])}{self.rng.randrange(23, 26)}-{self.s(6, DIGITS)}"

    def h18_dataset(self) -> str:
        return self.pick(
            [
                "PAYR.PROD.EMPMAST.KSDS",
                "PAYR.PROD.CHKREG(0)",
                "CMB.HR.DEDUCT.G0041V00",
                "SYS1.RACF.BACKUP",
                "PAYR.TEST.TIMECARD",
            ]
        )

    def h18_socrata_id(self) -> str:
        return f"{self.s(4, LOWNUM)}-{self.s(4, LOWNUM)}"

    def h18_i18n(self) -> str:
        return self.pick(
            [
                "La contraseña debe tener al menos 12 caracteres",
                "Contraseña incorrecta. Inténtelo de nuevo.",
                "Su sesión ha expirado, vuelva a iniciar sesión",
                "Las contraseñas no coinciden",
                "Password must contain at least one number",
                "Your password has expired",
                "Ingrese su número de tarjeta de biblioteca y PIN",
                "Olvidé mi contraseña",
                "Token de acceso inválido",
            ]
        )

    def h18_public(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.certificate()
        if shape == 1:
            return self.public_pem()
        if shape == 2:
            return self.ssh_public()
        return self.pgp_public()

    def h18_encrypted(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.sops_value()
        if shape == 1:
            return "ENC(" + base64.b64encode(self.rng.randbytes(32)).decode() + ")"
        if shape == 2:
            return "vault:v1:" + base64.b64encode(self.rng.randbytes(48)).decode()
        return self.sealed()

    def h18_doc_url(self) -> str:
        return self.pick(
            [
                "postgresql://usuario:contraseña@db.example.com:5432/permisos",
                "https://user:pass@api.example.org/v1",
                "mysql://koha:password@localhost/koha_example",
                "amqp://guest:guest@localhost:5672/",
                "redis://:<password>@cache.example.net:6379/0",
                "mongodb://<user>:<password>@mongo.example.com/srlog",
            ]
        )

    def h18_fake(self) -> str:
        return self.pick(
            [
                "fake-token-for-tests",
                "test_secret_not_real",
                "dummy-password",
                "unit-test-key-000",
                "prueba123-no-es-real",
                "sk_test_placeholder",
                "FAKE",
            ]
        )

    def h18_vapid_public(self) -> str:
        return base64.urlsafe_b64encode(b"\x04" + self.rng.randbytes(64)).decode().rstrip("=")

    def h18_mac(self) -> str:
        return ":".join(self.s(2, HEXU) for _ in range(6))

    def h18_isbn(self) -> str:
        return "978" + self.s(10, DIGITS)

    def h18_key_name(self) -> str:
        return self.pick(
            [
                "permits-db-password",
                "cad_api_key",
                "PAYROLL_RACF_PASSWORD",
                "srv311-twilio-token",
                "arcgis-client-secret",
                "ils/smtp/password",
            ]
        )


VALUES = Heldout18Values

TEMPLATES: list[evalset.Template] = [
    # ================================================================ resident services portal
    (
        "portal/.env.production",
        """# Portal de Servicios al Residente - produccion
DJANGO_SETTINGS_MODULE=portal.settings.prod
DJANGO_SECRET_KEY={V}
DATABASE_URL={V2}
ALLOWED_HOSTS=servicios.marisolbay.gov,portal.cmb.local
""",
        "h18_pw",
        True,
    ),
    (
        "portal/.env.production.example",
        """# Copie este archivo a .env.production y complete los valores
DJANGO_SECRET_KEY={V}
DATABASE_PASSWORD={V2}
ARCGIS_API_KEY={V3}
SENTRY_DSN=
""",
        "h18_placeholder",
        False,
    ),
    (
        "portal/portal/settings/prod.py",
        """from .base import *  # noqa

DEBUG = False
SECRET_KEY = {V}
DATABASES["default"]["PASSWORD"] = {V2}
EMAIL_HOST = "smtp.cmb.local"
EMAIL_HOST_PASSWORD = {V3}
""",
        "h18_py_ref",
        False,
    ),
    (
        "portal/fixtures/users.json",
        """[
  {"model": "accounts.resident", "pk": 1, "fields": {"email": "ana.rios@example.com", "password": "{V}", "language": "es"}},
  {"model": "accounts.resident", "pk": 2, "fields": {"email": "t.nguyen@example.com", "password": "{V2}", "language": "en"}},
  {"model": "accounts.staff", "pk": 3, "fields": {"email": "clerk@marisolbay.gov", "password": "{V3}"}}
]
""",
        "h18_hash",
        False,
    ),
    (
        "portal/frontend/src/config/payments.ts",
        """// Fee payments for permits, parking citations and library fines
export const paymentsConfig = {
  publishableKey: 'pk_live_51MbQ2cCmbPortalPubKeyOnlyxx',
  secretKey: {V},
  webhookSecret: {V2},
  currency: 'usd',
};
""",
        "h18_js_ref",
        False,
    ),
    (
        "portal/frontend/src/server/stripe.ts",
        """import Stripe from 'stripe';

// TODO(mrojas): move to Key Vault before go-live
const stripe = new Stripe('{V}', { apiVersion: '2023-10-16' });

export async function createFeeIntent(permitNo: string, cents: number) {
  return stripe.paymentIntents.create({ amount: cents, currency: 'usd', metadata: { permitNo } });
}
""",
        "stripe",
        True,
    ),
    (
        "portal/frontend/public/locales/es/auth.json",
        """{
  "login.title": "Iniciar sesión",
  "login.password": "Contraseña",
  "login.error": "{V}",
  "reset.hint": "{V2}",
  "reset.mismatch": "{V3}"
}
""",
        "h18_i18n",
        False,
    ),
    (
        "portal/config/credentials/README.md",
        """# Rails credentials (legacy resident accounts app)

The `secret_key_base` is stored encrypted in `config/credentials.yml.enc`. The master key
lives in the `cmb-portal-rails` Key Vault. The old value that was in `config/secrets.yml`
was rotated on 2024-03-12; it read:

    secret_key_base: {V}

(kept here for the incident report, ticket SEC-2291 - this value is no longer valid)
""",
        "hex128",
        True,
    ),
    (
        "portal/config/secrets.yml",
        """development:
  secret_key_base: {V}
test:
  secret_key_base: {V2}
production:
  secret_key_base: <%= ENV["SECRET_KEY_BASE"] %>
""",
        "hex128",
        True,
    ),
    (
        "portal/web-push/vapid.json",
        """{
  "subject": "mailto:webmaster@marisolbay.gov",
  "publicKey": "{V}",
  "comment": "private key is in Key Vault secret portal-vapid-private"
}
""",
        "h18_vapid_public",
        False,
    ),
    (
        "portal/web-push/vapid.local.json",
        """{
  "subject": "mailto:webmaster@marisolbay.gov",
  "publicKey": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
  "privateKey": "{V}"
}
""",
        "jwk_d",
        True,
    ),
    (
        "portal/tests/test_login.py",
        """import pytest

from accounts.models import Resident


@pytest.mark.django_db
def test_login_rejects_bad_password(client):
    Resident.objects.create_user(email="prueba@example.com", password="{V}")
    resp = client.post("/es/login/", {"email": "prueba@example.com", "password": "{V2}"})
    assert resp.status_code == 200
    assert "Contraseña incorrecta" in resp.content.decode()
""",
        "h18_fake",
        False,
    ),
    (
        "portal/docker-compose.yml",
        """services:
  web:
    build: .
    env_file: .env
    environment:
      DATABASE_URL: postgis://portal_app:${PORTAL_DB_PASSWORD}@db:5432/portal
      REDIS_URL: redis://redis:6379/0
  db:
    image: postgis/postgis:15-3.4
    environment:
      POSTGRES_USER: portal_app
      POSTGRES_PASSWORD: {V}
  redis:
    image: redis:7-alpine
    command: ["redis-server", "--requirepass", "{V2}"]
""",
        "h18_pw",
        True,
    ),
    (
        "portal/.github/workflows/deploy.yml",
        """name: deploy-portal
on:
  push:
    branches: [main]
jobs:
  deploy:
    runs-on: [self-hosted, cmb-dmz]
    steps:
      - uses: actions/checkout@v4
      - uses: azure/login@v2
        with:
          creds: ${{ secrets.AZURE_CREDENTIALS }}
      - run: ./deploy.sh
        env:
          PORTAL_DB_PASSWORD: ${{ secrets.PORTAL_DB_PASSWORD }}
          ARCGIS_API_KEY: ${{ secrets.ARCGIS_API_KEY }}
      - name: pin
        run: echo "deployed {V}"
""",
        "git_sha",
        False,
    ),
    (
        "portal/package-lock.json",
        """{
  "name": "cmb-portal-frontend",
  "lockfileVersion": 3,
  "packages": {
    "node_modules/leaflet": {
      "version": "1.9.4",
      "resolved": "https://registry.npmjs.org/leaflet/-/leaflet-1.9.4.tgz",
      "integrity": "{V}"
    },
    "node_modules/i18next": {
      "version": "23.7.6",
      "resolved": "https://registry.npmjs.org/i18next/-/i18next-23.7.6.tgz",
      "integrity": "{V2}"
    }
  }
}
""",
        "sri",
        False,
    ),
    (
        "portal/.npmrc",
        """@cmb:registry=https://npm.pkg.github.com
//npm.pkg.github.com/:_authToken={V}
always-auth=true
""",
        "github",
        True,
    ),
    # ================================================================ permits and licensing
    (
        "permits-api/src/main/resources/application-prod.yml",
        """spring:
  datasource:
    url: jdbc:postgresql://pg-permits.cmb.local:5432/permits
    username: permits_svc
    password: {V}
  mail:
    host: smtp.cmb.local
    username: permisos@marisolbay.gov
    password: {V2}
permits:
  gis:
    parcel-service: https://gis.marisolbay.gov/arcgis/rest/services/Parcels/MapServer/0
""",
        "h18_conf_ref",
        False,
    ),
    (
        "permits-api/src/main/java/gov/marisolbay/permits/config/GatewayConfig.java",
        """package gov.marisolbay.permits.config;

import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

@Configuration
public class GatewayConfig {

    // Temporary until CMB-SEC approves the vault agent on the permits VMs
    private static final String GATEWAY_KEY = "{V}";

    @Bean
    public PaymentGatewayClient paymentGatewayClient() {
        return new PaymentGatewayClient("https://payments.cmb.local/api", GATEWAY_KEY);
    }
}
""",
        "h18_api_key",
        True,
    ),
    (
        "permits-api/src/main/java/gov/marisolbay/permits/config/DataSourceConfig.java",
        """package gov.marisolbay.permits.config;

@Configuration
public class DataSourceConfig {
    @Bean
    DataSource permitsDataSource(Environment env) {
        HikariConfig cfg = new HikariConfig();
        cfg.setJdbcUrl(env.getProperty("permits.db.url"));
        cfg.setUsername("permits_svc");
        cfg.setPassword({V});
        return new HikariDataSource(cfg);
    }
}
""",
        "h18_java_ref",
        False,
    ),
    (
        "permits-api/src/test/java/gov/marisolbay/permits/PermitNumberTest.java",
        """package gov.marisolbay.permits;

class PermitNumberTest {
    @Test
    void parsesKnownFormats() {
        assertThat(PermitNumber.parse("{V}").isValid()).isTrue();
        assertThat(PermitNumber.parse("{V2}").year()).isGreaterThan(2017);
        assertThat(PermitNumber.parse("{V3}").isValid()).isTrue();
    }
}
""",
        "h18_permit_no",
        False,
    ),
    (
        "licensing-dotnet/src/Licensing.Web/appsettings.Production.json",
        """{
  "Logging": { "LogLevel": { "Default": "Warning" } },
  "ConnectionStrings": {
    "Licensing": "{V}"
  },
  "BusinessLicense": {
    "StateVerificationUrl": "https://sos.state.example.gov/api/entities"
  }
}
""",
        "h18_mssql_conn",
        True,
    ),
    (
        "licensing-dotnet/src/Licensing.Web/Services/StateVerificationClient.cs",
        """namespace Licensing.Web.Services;

public sealed class StateVerificationClient
{
    private readonly HttpClient _http;

    public StateVerificationClient(HttpClient http, IConfiguration config)
    {
        _http = http;
        var secret = {V};
        _http.DefaultRequestHeaders.Add("X-Api-Key", secret);
    }
}
""",
        "h18_cs_ref",
        False,
    ),
    (
        "licensing-dotnet/src/Licensing.Web/web.config",
        """<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <appSettings>
    <add key="LicenseSearchPageSize" value="25" />
    <add key="SmtpPassword" value="{V}" />
  </appSettings>
  <connectionStrings>
    <add name="Licensing" connectionString="{V2}" providerName="System.Data.SqlClient" />
  </connectionStrings>
</configuration>
""",
        "h18_redacted",
        False,
    ),
    (
        "permits-legacy-php/includes/config.inc.php",
        """<?php
// Sistema de Permisos v2 (2009) - ver wiki /Permisos/Legacy
define('DB_HOST', 'permdb01');
define('DB_USER', 'permisos');
define('DB_PASS', '{V}');
define('DB_NAME', 'permisos');
$cfg['ldap_bind_dn'] = 'CN=svc-permisos,OU=Service Accounts,DC=cmb,DC=local';
$cfg['ldap_bind_pw'] = '{V2}';
""",
        "h18_weak_pw",
        True,
    ),
    (
        "permits-legacy-php/includes/config.sample.php",
        """<?php
define('DB_HOST', 'localhost');
define('DB_USER', 'permisos');
define('DB_PASS', getenv('PERMISOS_DB_PASS'));
$cfg['ldap_bind_pw'] = '{V}';
$cfg['admin_hash'] = '{V2}';
""",
        "h18_placeholder",
        False,
    ),
    (
        "permits-legacy-php/admin/users.sql",
        """-- Export of permisos.usuarios (staff accounts), 2019-07-02
INSERT INTO usuarios (id, login, nombre, clave_hash) VALUES
 (1, 'admin', 'Administrador', '{V}'),
 (2, 'lgarcia', 'Lucia Garcia', '{V2}'),
 (3, 'inspector4', 'Inspector Zona 4', '{V3}');
""",
        "h18_hash",
        False,
    ),
    (
        "permits-legacy-php/admin/reset_admin.sql",
        """-- reset admin after lockout, run as permisos_dba
UPDATE usuarios SET clave = '{V}' WHERE login = 'admin';
-- the old app stores plain text, yes, see ticket PERM-88
UPDATE usuarios SET clave = '{V2}' WHERE login = 'inspector4';
""",
        "h18_weak_pw",
        True,
    ),
    (
        "permits-api/docs/es/operaciones.md",
        """# Permisos - guía de operaciones

## Base de datos

- Host: `pg-permits.cmb.local`, usuario `permits_svc`
- La contraseña está en Key Vault (`{V}`); nunca la copie en tickets.
- Ejemplo de cadena de conexión para desarrollo: `{V2}`

## Números de permiso

Formato `TIPO-AÑO-NNNNNN`, por ejemplo `BLD-2024-000123`.
""",
        "h18_key_name",
        False,
    ),
    (
        "permits-api/docs/es/traspaso-2023.md",
        """# Notas de traspaso (Ramón → equipo de Permisos)

Cosas que no están documentadas en otro lado:

1. El usuario de la pasarela de pagos en UAT es `cmb_uat` con clave `{V}`.
2. La cuenta de servicio del LDAP (`svc-permisos`) tiene clave `{V2}`; vence cada 180 días.
3. El certificado del SOS expira en marzo, pedir renovación a Sistemas.
""",
        "h18_pw",
        True,
    ),
    # ================================================================ parking and traffic
    (
        "traffic/sensor-collector/config.toml",
        """[mqtt]
broker = "tls://mqtt.traffic.cmb.local:8883"
client_id = "collector-01"
username = "sensor_ingest"
password = "{V}"

[timescale]
dsn = "{V2}"

[snmp]
community = "{V3}"
targets = ["10.42.8.0/24"]
""",
        "h18_mqtt_pw",
        True,
    ),
    (
        "traffic/sensor-collector/internal/snmp/poll.go",
        """package snmp

import (
	"os"
	"time"

	"github.com/gosnmp/gosnmp"
)

func NewPoller(target string) *gosnmp.GoSNMP {
	return &gosnmp.GoSNMP{
		Target:    target,
		Port:      161,
		Community: "{V}",
		Version:   gosnmp.Version2c,
		Timeout:   2 * time.Second,
	}
}

var _ = os.Getenv
""",
        "h18_snmp_community",
        True,
    ),
    (
        "traffic/sensor-collector/testdata/readings.jsonl",
        """{"sensor":"{V}","lane":1,"occupancy":0.31,"speed_kph":42,"ts":"2024-05-02T07:15:00Z"}
{"sensor":"{V2}","lane":2,"occupancy":0.12,"speed_kph":55,"ts":"2024-05-02T07:15:00Z"}
{"sensor":"{V3}","lane":1,"occupancy":0.77,"speed_kph":9,"ts":"2024-05-02T07:15:30Z"}
""",
        "h18_sensor_serial",
        False,
    ),
    (
        "traffic/signal-bridge/src/main.rs",
        """use std::env;

const NTCIP_USER: &str = "cmb_signal";
const NTCIP_PASS: &str = "{V}";

fn main() {
    let controller = env::var("SIGNAL_CONTROLLER").unwrap_or_else(|_| "10.42.8.17".into());
    let session = ntcip::Session::new(&controller, NTCIP_USER, NTCIP_PASS);
    session.poll_phases().expect("poll failed");
}
""",
        "h18_pw",
        True,
    ),
    (
        "traffic/mosquitto/passwd",
        """sensor_ingest:{V}
collector-01:{V2}
dashboard_ro:{V3}
""",
        "mosquitto_hash",
        False,
    ),
    (
        "traffic/mosquitto/bridge.conf",
        """connection cmb-to-regional
address mqtt.regional-transit.example.org:8883
remote_username cmb_bridge
remote_password {V}
topic traffic/# out 1
bridge_cafile /mosquitto/certs/regional-ca.pem
""",
        "h18_mqtt_pw",
        True,
    ),
    (
        "traffic/k8s/collector-secret.yaml",
        """apiVersion: v1
kind: Secret
metadata:
  name: sensor-collector
  namespace: traffic
type: Opaque
stringData:
  MQTT_PASSWORD: "{V}"
  TSDB_DSN: "{V2}"
""",
        "h18_uri",
        True,
    ),
    (
        "traffic/k8s/collector-sealed.yaml",
        """apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: sensor-collector
  namespace: traffic
spec:
  encryptedData:
    MQTT_PASSWORD: {V}
    TSDB_DSN: {V2}
""",
        "sealed",
        False,
    ),
    (
        "traffic/k8s/collector-deployment.yaml",
        """apiVersion: apps/v1
kind: Deployment
metadata:
  name: sensor-collector
  namespace: traffic
spec:
  template:
    spec:
      containers:
        - name: collector
          image: registry.cmb.local/traffic/collector@{V}
          env:
            - name: MQTT_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: sensor-collector
                  key: MQTT_PASSWORD
""",
        "h18_digest",
        False,
    ),
    (
        "parking/lpr-gateway/appsettings.json",
        """{
  "Lpr": {
    "VendorEndpoint": "https://lpr-vendor.example.com/api/v3",
    "ApiKey": "{V}",
    "CameraIds": ["LPR-0001", "LPR-0002"]
  },
  "Citations": {
    "ConnectionString": "{V2}"
  }
}
""",
        "h18_api_key",
        True,
    ),
    (
        "parking/meters/zones_2023.csv",
        """zone_id,meter_serial,apn,rate_cents
Z101,{V},{V4},150
Z102,{V2},{V4},150
Z205,{V3},{V4},200
""",
        "h18_sensor_serial",
        False,
    ),
    (
        "parking/citations/README.es.md",
        """# Multas de estacionamiento

La API de multas usa una clave por cámara. Las claves **no** van en el repositorio;
se obtienen con:

```bash
export LPR_API_KEY={V}
```

Para pruebas locales use `LPR_API_KEY={V2}`.
""",
        "h18_shell_ref",
        False,
    ),
    # ================================================================ library system
    (
        "library/koha-conf/koha-conf.xml",
        """<yazgfs>
<config>
 <db_scheme>mysql</db_scheme>
 <database>koha_cmb</database>
 <hostname>ils-db.cmb.local</hostname>
 <port>3306</port>
 <user>ils_koha</user>
 <pass>{V}</pass>
 <zebra_bib_index_mode>dom</zebra_bib_index_mode>
 <memcached_servers>127.0.0.1:11211</memcached_servers>
</config>
</yazgfs>
""",
        "h18_pw",
        True,
    ),
    (
        "library/sip2/SIPconfig.xml",
        """<acsconfig xmlns="http://openncip.org/acs-config/1.0/">
  <accounts>
    <login id="selfcheck-central" password="{V}" delimiter="|" institution="CMB-CENTRAL" />
    <login id="selfcheck-norte" password="{V2}" delimiter="|" institution="CMB-NORTE" />
  </accounts>
  <institutions>
    <institution id="CMB-CENTRAL" implementation="ILS" />
  </institutions>
</acsconfig>
""",
        "h18_sip2_pw",
        True,
    ),
    (
        "library/jobs/overdue_notices.rb",
        """# Nightly overdue notices (English + Spanish templates)
require 'mail'

Mail.defaults do
  delivery_method :smtp,
                  address: 'smtp.cmb.local',
                  user_name: 'biblioteca@marisolbay.gov',
                  password: {V},
                  enable_starttls_auto: true
end
""",
        "h18_conf_ref",
        False,
    ),
    (
        "library/jobs/ebook_sync.rb",
        """# Sync e-book holdings from the consortium vendor
require 'net/http'

VENDOR_URL = 'https://ebooks.vendor.example.com/v2/collections/cmb'
CLIENT_ID = 'cmb-library'
CLIENT_SECRET = '{V}'

def fetch_token
  Net::HTTP.post_form(URI("#{VENDOR_URL}/oauth"), client_id: CLIENT_ID, client_secret: CLIENT_SECRET)
end
""",
        "h18_hex_secret",
        True,
    ),
    (
        "library/tests/fixtures/patrons.yml",
        """patron_ana:
  cardnumber: "{V}"
  surname: Rios
  branchcode: CENTRAL
patron_tom:
  cardnumber: "{V2}"
  surname: Nguyen
  branchcode: NORTE
""",
        "h18_barcode",
        False,
    ),
    (
        "library/tests/fixtures/holds.csv",
        """isbn,cardnumber,branch,status
{V},31204001234567,CENTRAL,W
{V2},31204009876543,NORTE,T
{V3},31204005555555,CENTRAL,W
""",
        "h18_isbn",
        False,
    ),
    (
        "library/opac/i18n/es-ES/opac.po",
        """msgid "Password"
msgstr "Contraseña"

msgid "Your password must be at least 8 characters"
msgstr "{V}"

msgid "Invalid card number or PIN"
msgstr "{V2}"
""",
        "h18_i18n",
        False,
    ),
    # ================================================================ 311 call centre
    (
        "srv311/ivr/.env",
        """TWILIO_ACCOUNT_SID=AC5f1c2d3e4a5b6c7d8e9f0a1b2c3d4e5f
TWILIO_AUTH_TOKEN={V}
TWILIO_NUMBER=+15055550311
IVR_LANGS=en,es
""",
        "h18_twilio_token",
        True,
    ),
    (
        "srv311/ivr/src/voice.ts",
        """import twilio from 'twilio';

const client = twilio(process.env.TWILIO_ACCOUNT_SID, {V});

export function speak(lang: 'en' | 'es', text: string) {
  const vr = new twilio.twiml.VoiceResponse();
  vr.say({ language: lang === 'es' ? 'es-MX' : 'en-US' }, text);
  return vr.toString();
}
""",
        "h18_js_ref",
        False,
    ),
    (
        "srv311/crm-sync/Crm311.Sync/appsettings.Production.json",
        """{
  "Crm": {
    "InstanceUrl": "https://cmb311.crm.example.com",
    "ClientId": "3MVG9cmb311syncClientIdPublic",
    "ClientSecret": "{V}",
    "Username": "integration@marisolbay.gov",
    "Password": "{V2}"
  }
}
""",
        "h18_pw",
        True,
    ),
    (
        "srv311/crm-sync/tests/Crm311.Sync.Tests/ServiceRequestTests.cs",
        """namespace Crm311.Sync.Tests;

public class ServiceRequestTests
{
    [Theory]
    [InlineData("{V}")]
    [InlineData("{V2}")]
    [InlineData("{V3}")]
    public void ParsesServiceRequestNumbers(string sr) =>
        Assert.True(ServiceRequest.TryParse(sr, out _));
}
""",
        "h18_sr_number",
        False,
    ),
    (
        "srv311/notify/notify.py",
        '''"""Send SMS / email status updates for 311 service requests."""
import sendgrid

SG = sendgrid.SendGridAPIClient(api_key="{V}")
FROM = "311@marisolbay.gov"


def notify(sr_number: str, to: str, lang: str = "es") -> None:
    subject = f"Solicitud {sr_number} actualizada" if lang == "es" else f"Request {sr_number} updated"
    SG.send(build_message(FROM, to, subject))
''',
        "sendgrid",
        True,
    ),
    (
        "srv311/notify/notify_settings.py",
        """SENDGRID_API_KEY = {V}
TWILIO_AUTH_TOKEN = {V2}
DEFAULT_LANG = "es"
""",
        "h18_py_ref",
        False,
    ),
    (
        "srv311/logs/intake-2024-05-02.log",
        """2024-05-02T08:01:12Z INFO  intake sr={V} channel=phone lang=es category=pothole
2024-05-02T08:01:15Z INFO  intake sr={V2} channel=app lang=en category=streetlight
2024-05-02T08:02:40Z WARN  crm retry sr={V3} attempt=2 reason=timeout
""",
        "h18_sr_number",
        False,
    ),
    (
        "srv311/logs/crm-sync-2024-04-18.log",
        """2024-04-18T02:00:01Z DEBUG oauth POST https://cmb311.crm.example.com/services/oauth2/token grant_type=password username=integration@marisolbay.gov password={V}
2024-04-18T02:00:02Z INFO  oauth ok, token expires in 7200s
""",
        "h18_pw",
        True,
    ),
    (
        "srv311/logs/crm-sync-2024-06-03.log",
        """2024-06-03T02:00:01Z DEBUG oauth POST https://cmb311.crm.example.com/services/oauth2/token grant_type=password username=integration@marisolbay.gov password={V}
2024-06-03T02:00:02Z DEBUG request-id={V2}
""",
        "h18_redacted",
        False,
    ),
    (
        "srv311/docs/en/runbook.md",
        """# 311 Intake runbook

## Twilio outage
1. Switch the main number to the Genesys fallback (see PagerDuty service `{V}`).
2. Post in #cmb-311-ops.

## CRM sync stuck
Check the last request id in the log, e.g. `{V2}`, and re-run `crm-sync --from-id`.
""",
        "h18_uuid",
        False,
    ),
    (
        "srv311/alerts/pagerduty.yaml",
        """integrations:
  - name: 311-intake
    service: P3X9K2L
    routing_key: {V}
  - name: crm-sync
    service: PQ8M1ZT
    routing_key: {V2}
""",
        "h18_hex_secret",
        True,
    ),
    (
        "srv311/alerts/ops_bot.py",
        """import requests

PD_TOKEN = "{V}"
SLACK_HOOK = "{V2}"


def page(summary: str) -> None:
    requests.post(
        "https://api.pagerduty.com/incidents",
        headers={"Authorization": f"Token token={PD_TOKEN}"},
        json={"incident": {"title": summary}},
        timeout=10,
    )
""",
        "h18_pd_key",
        True,
    ),
    # ================================================================ GIS and open data
    (
        "gis/etl/parcels_sync.py",
        '''"""Nightly parcel sync: county assessor -> PostGIS -> ArcGIS Online hosted layer."""
from arcgis.gis import GIS

GIS_URL = "https://marisolbay.maps.arcgis.com"
gis = GIS(GIS_URL, api_key="{V}")

PARCEL_LAYER_ITEM = "3f6a2b9c1d7e4f50a8b2c3d4e5f60718"
''',
        "h18_arcgis_key",
        True,
    ),
    (
        "gis/etl/layers.yaml",
        """# ArcGIS Online item ids of the hosted layers the ETL writes to
parcels:
  item_id: {V}
  layer: 0
zoning:
  item_id: {V2}
  layer: 0
street_centerlines:
  item_id: {V3}
  layer: 2
""",
        "h18_item_id",
        False,
    ),
    (
        "gis/etl/opendata_publish.py",
        """import os

from sodapy import Socrata

client = Socrata(
    "datos.marisolbay.gov",
    app_token=os.environ["SOCRATA_APP_TOKEN"],
    username="opendata@marisolbay.gov",
    password={V},
)

DATASETS = {"permits": "{V2}", "sr311": "{V3}"}
""",
        "h18_py_ref",
        False,
    ),
    (
        "gis/etl/opendata_publish_old.py",
        """import os

from sodapy import Socrata

client = Socrata(
    "datos.marisolbay.gov",
    os.environ["SOCRATA_APP_TOKEN"],
    username="opendata@marisolbay.gov",
    password="{V}",
)
""",
        "h18_pw",
        True,
    ),
    (
        "gis/etl/datasets.csv",
        """name,dataset_id,refresh
Building permits,{V},daily
311 service requests,{V2},hourly
Parking citations,{V3},daily
""",
        "h18_socrata_id",
        False,
    ),
    (
        "gis/etl/sql/roles_dump.sql",
        """-- pg_dumpall --roles-only, 2024-02-01
CREATE ROLE gis_etl;
ALTER ROLE gis_etl WITH LOGIN PASSWORD '{V}';
CREATE ROLE opendata_ro;
ALTER ROLE opendata_ro WITH LOGIN PASSWORD '{V2}';
""",
        "scram_verifier",
        False,
    ),
    (
        "gis/terraform/terraform.tfvars",
        """location        = "westus2"
arcgis_api_key  = "{V}"
tile_cache_size = 200
""",
        "h18_arcgis_key",
        True,
    ),
    (
        "gis/raster-loader/loader.env",
        """AZURE_STORAGE_CONNECTION_STRING={V}
RASTER_CONTAINER=orthophotos-2024
""",
        "h18_azure_conn",
        True,
    ),
    (
        "gis/raster-loader/README.md",
        """# Raster loader

Uploads orthophoto tiles to blob storage. Public read links use a SAS token generated by
`make sas`, e.g.

    https://cmbgisraster.blob.core.windows.net/orthophotos-2024?{V}

That one was valid until June 2026 for the county planners (shared in the CMB-GIS Teams channel).
""",
        "h18_sas",
        True,
    ),
    (
        "gis/webmap/src/map.js",
        """import esriConfig from '@arcgis/core/config';

// public read-only key, restricted by referrer to *.marisolbay.gov
esriConfig.apiKey = {V};

export const PARCELS_ITEM = '{V2}';
""",
        "h18_js_ref",
        False,
    ),
    (
        "gis/webmap/src/map.legacy.js",
        """require(['esri/config', 'esri/Map'], function (esriConfig, Map) {
  esriConfig.apiKey = '{V}';
  var map = new Map({ basemap: 'arcgis-topographic' });
});
""",
        "h18_arcgis_key",
        True,
    ),
    (
        "gis/notebooks/zoning_analysis.ipynb",
        """{
 "cells": [
  {
   "cell_type": "code",
   "source": [
    "import psycopg2\\n",
    "conn = psycopg2.connect(\\"{V}\\")\\n",
    "df = pd.read_sql('select * from zoning.parcels_2024', conn)"
   ]
  }
 ],
 "metadata": {"kernelspec": {"name": "python3"}}
}
""",
        "h18_uri",
        True,
    ),
    (
        "gis/parcels/apn_lookup_test.py",
        """import pytest

from parcels import normalize_apn


@pytest.mark.parametrize("apn", ["{V}", "{V2}", "{V3}"])
def test_normalize(apn):
    assert normalize_apn(apn).count("-") == 2
""",
        "h18_apn",
        False,
    ),
    (
        "gis/aws/credentials",
        """[cmb-gis-backup]
{V}
region = us-west-2
""",
        "aws_ini_pair",
        True,
    ),
    (
        "gis/aws/README.md",
        """# AWS (tile backup bucket)

Use SSO: `aws sso login --profile cmb-gis`. The docs example keys are
`{V}` with secret `wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY` - do not use them.
""",
        "aws_example",
        False,
    ),
    # ================================================================ payroll mainframe bridge
    (
        "payroll-bridge/jcl/PAYEXTR.jcl",
        """//PAYEXTR  JOB (CMB,PAY),'NIGHTLY EXTRACT',CLASS=A,MSGCLASS=X,
//             USER=PAYBATCH,PASSWORD={V}
//STEP01   EXEC PGM=IDCAMS
//SYSPRINT DD SYSOUT=*
//INFILE   DD DSN=PAYR.PROD.EMPMAST.KSDS,DISP=SHR
//OUTFILE  DD DSN=PAYR.PROD.EXTRACT(+1),DISP=(NEW,CATLG)
""",
        "h18_racf_pw",
        True,
    ),
    (
        "payroll-bridge/jcl/PAYCHK.jcl",
        """//PAYCHK   JOB (CMB,PAY),'CHECK REGISTER',CLASS=A,MSGCLASS=X
//STEP01   EXEC PGM=PAYR0410
//CHKREG   DD DSN={V},DISP=SHR
//EMPMAST  DD DSN={V2},DISP=SHR
//SYSOUT   DD SYSOUT=*
""",
        "h18_dataset",
        False,
    ),
    (
        "payroll-bridge/src/main/kotlin/gov/marisolbay/payroll/MqBridge.kt",
        """package gov.marisolbay.payroll

import com.ibm.mq.jms.MQConnectionFactory

object MqBridge {
    private const val QMGR = "CMBPAYQ1"
    private const val CHANNEL = "PAY.SVRCONN"
    private const val USER = "payroll_br"
    private const val PASSWORD = "{V}"

    fun connect() = MQConnectionFactory().apply {
        queueManager = QMGR
        channel = CHANNEL
        hostName = "mq-pay.cmb.local"
        port = 1414
    }.createConnection(USER, PASSWORD)
}
""",
        "h18_pw",
        True,
    ),
    (
        "payroll-bridge/src/main/java/gov/marisolbay/payroll/TelnetSession.java",
        """package gov.marisolbay.payroll;

/** TN3270 screen scraping for the deductions screen (PAYD). Yes, really. */
public class TelnetSession {
    static final String HOST = "mvs1.cmb.local";
    static final String USERID = "PAYSCRP";
    static final String PASSWORD = "{V}";
    static final String NEW_PASSWORD_NEXT_CYCLE = "{V2}";
}
""",
        "h18_racf_pw",
        True,
    ),
    (
        "payroll-bridge/src/main/resources/bridge.properties",
        """mq.host=mq-pay.cmb.local
mq.port=1414
mq.qmgr=CMBPAYQ1
mq.user=payroll_br
mq.password={V}
racf.user=PAYBATCH
racf.password={V2}
""",
        "h18_encrypted",
        False,
    ),
    (
        "payroll-bridge/copybooks/EMPMAST.cpy",
        """      * EMPLOYEE MASTER RECORD - CMB PAYROLL
      * PASSWORD FIELD IS THE ESS PIN HASH, NOT A PASSWORD
       01  EMP-MASTER.
           05  EMP-ID              PIC 9(7).
           05  EMP-NAME            PIC X(40).
           05  EMP-PIN-HASH        PIC X(64) VALUE '{V}'.
           05  EMP-DEPT            PIC X(4).
""",
        "h18_digest",
        False,
    ),
    (
        "payroll-bridge/scripts/Send-PayFile.ps1",
        r"""# Sends the ACH file to the bank SFTP (runs on PAYAPP02 as CMB\svc-payroll)
$ErrorActionPreference = 'Stop'
$user = 'cmb_payroll'
$pass = ConvertTo-SecureString '{V}' -AsPlainText -Force
$cred = New-Object System.Management.Automation.PSCredential($user, $pass)
$session = New-SFTPSession -ComputerName 'sftp.bank.example.com' -Credential $cred
Set-SFTPItem -SessionId $session.SessionId -Path 'D:\Payroll\Out\ach.txt' -Destination '/incoming'
""",
        "h18_pw",
        True,
    ),
    (
        "payroll-bridge/docs/en/handover-2022.md",
        """# Payroll bridge handover (D. Okafor, last day 2022-09-30)

Stuff only I knew:

* PAYSCRP (the TN3270 scraper id) password: `{V}` - it is exempt from expiry, Security knows.
* SQLPAY01 sa password: `{V2}` (please change it, I never did)
* Bank SFTP host key fingerprint is in `known_hosts` in this repo.
""",
        "h18_pw",
        True,
    ),
    # ================================================================ police & fire dispatch
    (
        "dispatch/cad-gateway/config/cad.yaml",
        """cad:
  vendor_url: https://cad.vendor.example.com/api/v5
  agency_ori: CA0000000
  api_key: {V}
  hmac_secret: {V2}
ncic_gateway:
  host: 10.10.20.5
  port: 4443
""",
        "h18_hex_secret",
        True,
    ),
    (
        "dispatch/cad-gateway/config/cad.prod.yaml",
        """cad:
  vendor_url: https://cad.vendor.example.com/api/v5
  api_key: {V}
  hmac_secret: {V2}
""",
        "h18_conf_ref",
        False,
    ),
    (
        "dispatch/cad-gateway/src/Cad.Gateway/IncidentPublisher.cs",
        """namespace Cad.Gateway;

public sealed class IncidentPublisher
{
    // fire station alerting webhook (Teams channel "Bomberos - Despacho")
    private const string StationWebhook = "{V}";

    public Task PublishAsync(Incident incident, CancellationToken ct) =>
        _http.PostAsJsonAsync(StationWebhook, incident.ToCard(), ct);
}
""",
        "teams_webhook",
        True,
    ),
    (
        "dispatch/cad-gateway/tests/fixtures/incidents.json",
        """[
  {"incident": "{V}", "type": "STRUCTURE FIRE", "station": 4, "lat": 34.011, "lon": -118.49},
  {"incident": "{V2}", "type": "TRAFFIC COLLISION", "station": 2, "lat": 34.021, "lon": -118.47},
  {"incident": "{V3}", "type": "MEDICAL", "station": 1, "lat": 34.003, "lon": -118.50}
]
""",
        "h18_incident",
        False,
    ),
    (
        "dispatch/cad-gateway/certs/ncic-client.key",
        """{V}
""",
        "h18_rsa",
        True,
    ),
    (
        "dispatch/cad-gateway/certs/ncic-client.crt",
        """{V}
""",
        "certificate",
        False,
    ),
    (
        "dispatch/cad-gateway/certs/ncic-client.key.enc",
        """{V}
""",
        "legacy_encrypted_key",
        False,
    ),
    (
        "dispatch/helm/values-prod.yaml",
        """image:
  repository: registry.cmb.local/dispatch/cad-gateway
  tag: 3.8.1
cad:
  apiKeySecret: cad-gateway-secrets
  apiKeySecretKey: api_key
tls:
  clientCert: |
    {IV}
""",
        "certificate",
        False,
    ),
    (
        "dispatch/helm/values-staging.yaml",
        """image:
  repository: registry.cmb.local/dispatch/cad-gateway
  tag: 3.9.0-rc1
cad:
  apiKey: "{V}"
tls:
  clientKey: |
    {IV2}
""",
        "h18_rsa",
        True,
    ),
    (
        "dispatch/fire-alerting/alerting.go",
        """package alerting

import "net/http"

// Discord webhook for volunteer reserve notifications (Station 7)
const reserveWebhook = "{V}"

func Notify(msg string) error {
	_, err := http.Post(reserveWebhook, "application/json", payload(msg))
	return err
}
""",
        "h18_webhook",
        True,
    ),
    (
        "dispatch/police-rms/README.md",
        """# RMS nightly export

Needs the ODBC DSN `RMS_PROD` and the `rms_export` account. The password is the
CyberArk object `{V}`; the export refuses to run when `pwd` is empty.

Sample row of the export (see `samples/`): incident `{V2}`, beat 12.
""",
        "h18_key_name",
        False,
    ),
    (
        "dispatch/ansible/group_vars/cad/vault.yml",
        """{V}
""",
        "ansible_vault",
        False,
    ),
    (
        "dispatch/ansible/group_vars/cad/vars.yml",
        """cad_gateway_version: 3.8.1
cad_api_key: "{{ vault_cad_api_key }}"
cad_hmac_secret: "{{ vault_cad_hmac_secret }}"
cad_service_account: svc-cad
cad_service_password: {V}
""",
        "h18_weak_pw",
        True,
    ),
    # ================================================================ infra / CI / shared
    (
        "infra/terraform/providers.tf",
        """provider "aws" {
  region = "us-west-2"
  {V}
}

provider "azurerm" {
  features {}
}
""",
        "aws_tf_pair",
        True,
    ),
    (
        "infra/terraform/providers.prod.tf",
        """provider "aws" {
  region  = "us-west-2"
  profile = "cmb-prod"
  assume_role {
    role_arn = "arn:aws:iam::123456789012:role/terraform"
  }
}

data "aws_secretsmanager_secret_version" "permits_db" {
  secret_id = "{V}"
}
""",
        "secret_arn",
        False,
    ),
    (
        "infra/terraform/.terraform.lock.hcl",
        """provider "registry.terraform.io/hashicorp/azurerm" {
  version     = "3.90.0"
  constraints = "~> 3.90"
  hashes = [
    "{V}",
    "{V2}",
  ]
}
""",
        "gosum_hash",
        False,
    ),
    (
        "infra/ansible/files/authorized_keys",
        """{V}
{V2}
""",
        "ssh_public",
        False,
    ),
    (
        "infra/ansible/files/deploy_id_ed25519",
        """{V}
""",
        "openssh_key",
        True,
    ),
    (
        "infra/gitlab/.gitlab-ci.yml",
        """stages: [build, deploy]

variables:
  REGISTRY: registry.cmb.local
  REGISTRY_USER: ci-bot
  REGISTRY_PASSWORD: {V}

build:
  stage: build
  script:
    - docker login -u "$REGISTRY_USER" -p "$REGISTRY_PASSWORD" "$REGISTRY"
    - docker build -t "$REGISTRY/portal/web:$CI_COMMIT_SHORT_SHA" .
""",
        "h18_pw",
        True,
    ),
    (
        "infra/jenkins/credentials.xml",
        """<com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
  <scope>GLOBAL</scope>
  <id>nexus-cmb</id>
  <username>jenkins</username>
  <password>{V}</password>
</com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
""",
        "h18_encrypted",
        False,
    ),
    (
        "infra/docker/Dockerfile.etl",
        """FROM python:3.12-slim
ARG PIP_INDEX_URL=https://nexus.cmb.local/repository/pypi/simple
ENV ARCGIS_API_KEY={V}
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY etl/ /app/etl
CMD ["python", "-m", "etl.parcels_sync"]
""",
        "h18_arcgis_key",
        True,
    ),
    (
        "infra/docker/Dockerfile.portal",
        """FROM node:20-alpine AS build
WORKDIR /app
COPY . .
RUN echo "//npm.pkg.github.com/:_authToken={V}" > .npmrc && npm ci && rm .npmrc
RUN npm run build
""",
        "npm",
        True,
    ),
    (
        "infra/nexus/settings.xml",
        """<settings>
  <servers>
    <server>
      <id>cmb-nexus</id>
      <username>deploy</username>
      <password>{V}</password>
    </server>
  </servers>
</settings>
""",
        "h18_pw",
        True,
    ),
    (
        "infra/nexus/settings-security.example.xml",
        """<settings>
  <servers>
    <server>
      <id>cmb-nexus</id>
      <username>${env.NEXUS_USER}</username>
      <password>{V}</password>
    </server>
  </servers>
</settings>
""",
        "tune6_maven_ref",
        False,
    ),
    (
        "infra/github/bot/.env",
        """GITHUB_TOKEN={V}
GITLAB_MIRROR_TOKEN={V2}
""",
        "h18_vendor_token",
        True,
    ),
    (
        "infra/monitoring/alertmanager.yml",
        """route:
  receiver: it-ops
receivers:
  - name: it-ops
    slack_configs:
      - api_url: {V}
        channel: '#cmb-it-alerts'
    email_configs:
      - to: it-oncall@marisolbay.gov
        auth_password: {V2}
""",
        "h18_placeholder",
        False,
    ),
    (
        "infra/monitoring/alertmanager.prod.yml",
        """route:
  receiver: it-ops
receivers:
  - name: it-ops
    slack_configs:
      - api_url: '{V}'
        channel: '#cmb-it-alerts'
""",
        "slack_webhook",
        True,
    ),
    (
        "infra/ldap/slapd-users.ldif",
        """dn: uid=kiosk01,ou=library,dc=cmb,dc=local
objectClass: inetOrgPerson
uid: kiosk01
userPassword: {V}

dn: uid=kiosk02,ou=library,dc=cmb,dc=local
objectClass: inetOrgPerson
uid: kiosk02
userPassword: {V2}
""",
        "h18_hash",
        False,
    ),
    (
        "infra/nginx/htpasswd",
        """opendata-admin:{V}
gis-preview:{V2}
""",
        "apr1",
        False,
    ),
    (
        "infra/nginx/conf.d/gis-preview.conf",
        """server {
    listen 443 ssl;
    server_name gis-preview.cmb.local;
    location /arcgis/ {
        proxy_pass https://gis01.cmb.local/arcgis/;
        proxy_set_header Authorization "Basic {V}";
    }
}
""",
        "h18_basic",
        True,
    ),
    (
        "infra/vault/policies/README.md",
        """# Vault

Root token for the DR cluster was generated during the 2024 tabletop and was supposed to be
revoked afterwards:

    export VAULT_ADDR=https://vault-dr.cmb.local:8200
    export VAULT_TOKEN={V}
""",
        "vault_token",
        True,
    ),
    (
        "infra/sops/.sops.yaml",
        """creation_rules:
  - path_regex: secrets/.*\\.yaml$
    age: {V}
""",
        "age_public",
        False,
    ),
    (
        "infra/sops/secrets/permits.yaml",
        """permits_db_password: {V}
payments_api_key: {V2}
sops:
  version: 3.8.1
""",
        "sops_value",
        False,
    ),
    (
        "infra/sops/keys/ops.agekey",
        """# created: 2023-11-02T10:00:00-08:00
# public key: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
{V}
""",
        "age_key",
        True,
    ),
    (
        "infra/gpg/it-security.asc",
        """{V}
""",
        "pgp_public",
        False,
    ),
    (
        "infra/backup/restic.env",
        """RESTIC_REPOSITORY=s3:https://s3.us-west-2.amazonaws.com/cmb-it-backups
RESTIC_PASSWORD={V}
{V2}
""",
        "h18_pw",
        True,
    ),
    (
        "infra/backup/restic.aws.env",
        """{V}
""",
        "aws_env_pair",
        True,
    ),
    (
        "infra/backup/restic.env.template",
        """RESTIC_REPOSITORY=s3:https://s3.us-west-2.amazonaws.com/cmb-it-backups
RESTIC_PASSWORD={V}
AWS_ACCESS_KEY_ID={V2}
""",
        "h18_shell_ref",
        False,
    ),
    (
        "infra/azure/sp-gis-etl.json",
        """{
  "appId": "{V}",
  "displayName": "sp-gis-etl",
  "tenant": "{V2}"
}
""",
        "h18_uuid",
        False,
    ),
    (
        "infra/azure/sp-gis-etl.secret.json",
        """{
  "appId": "6b1e0d54-95b6-4a6f-9d0e-3c8f7a2b1e44",
  "password": "{V}",
  "tenant": "0f1d2c3b-4a59-4e7d-8c6b-5a4f3e2d1c0b"
}
""",
        "azure_client_secret",
        True,
    ),
    (
        "infra/scripts/new_kiosk.ps1",
        r"""# Library kiosk provisioning - local admin for the branch techs
$pw = ConvertTo-SecureString '{V}' -AsPlainText -Force
New-LocalUser -Name 'kioskadmin' -Password $pw -PasswordNeverExpires
Add-LocalGroupMember -Group 'Administrators' -Member 'kioskadmin'
""",
        "h18_weak_pw",
        True,
    ),
    (
        "infra/scripts/check_certs.sh",
        """#!/bin/sh
# Expected SHA-256 fingerprints of the public endpoints
EXPECTED_PORTAL={V}
EXPECTED_DATOS={V2}
for host in servicios.marisolbay.gov datos.marisolbay.gov; do
  openssl s_client -connect "$host:443" </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256
done
""",
        "hex64",
        False,
    ),
    (
        "infra/network/switch-traffic-core.cfg",
        """hostname TRF-CORE-01
!
snmp-server community {V} RO 10
snmp-server community {V2} RW 11
aaa new-model
!
tacacs server ISE-01
 address ipv4 10.0.0.20
""",
        "h18_snmp_community",
        True,
    ),
    (
        "infra/network/switch-library.cfg",
        """hostname LIB-CENTRAL-SW1
!
username netops secret 10 {V}
snmp-server community public RO
ntp server 10.0.0.1
""",
        "sha512crypt",
        False,
    ),
    # ================================================================ docs, wiki, chat
    (
        "wiki/it-onboarding.en.md",
        """# IT onboarding

Your initial AD password is sent by SMS. It must follow the policy: {V} characters, one
digit, one symbol. Never share it; the Service Desk will never ask for it.

Common error text you will see: "{V2}".
""",
        "number_words",
        False,
    ),
    (
        "wiki/incorporacion.es.md",
        """# Incorporación al Departamento de TI

Su contraseña inicial de AD se envía por SMS. Ejemplo del mensaje de error del portal:
"{V}". Para restablecerla, llame a la Mesa de Ayuda (ext. 4357).

Ejemplo de conexión a la base de pruebas: `{V2}`
""",
        "h18_i18n",
        False,
    ),
    (
        "wiki/vendor-contacts.md",
        """# Vendor contacts

| Vendor | Contact | Portal login | Notes |
|---|---|---|---|
| CAD vendor | soporte@cad.vendor.example.com | cmb_admin / {V} | 24x7 |
| Parking meters | ops@meters.vendor.example.com | CMB_PARKING / {V2} | |
| E-books | help@ebooks.vendor.example.com | cmb-library / {V3} | renew in Jan |
""",
        "h18_pw",
        True,
    ),
    (
        "wiki/vendor-contacts.sanitized.md",
        """# Vendor contacts (sanitized copy for the public records request PRR-2024-118)

| Vendor | Contact | Portal login |
|---|---|---|
| CAD vendor | soporte@cad.vendor.example.com | cmb_admin / {V} |
| Parking meters | ops@meters.vendor.example.com | CMB_PARKING / {V2} |
""",
        "h18_redacted",
        False,
    ),
    (
        "wiki/chat-export/it-ops-2024-03.txt",
        """[2024-03-14 09:12] maria.c: anyone have the koha db pw? ils-db is refusing ils_koha
[2024-03-14 09:14] jlopez: it's {V} since the rotation on monday
[2024-03-14 09:15] maria.c: thx, worked
[2024-03-14 09:40] jlopez: also the new GIS etl key is {V2}, put it in the vault pls
""",
        "h18_url_pw",
        True,
    ),
    (
        "wiki/chat-export/it-ops-2024-04.txt",
        """[2024-04-02 10:01] ana.r: please don't paste passwords here, use the vault link
[2024-04-02 10:02] ana.r: koha: {V}
[2024-04-02 10:02] ana.r: permits uat: {V2}
[2024-04-02 10:03] jlopez: 👍
""",
        "op_ref",
        False,
    ),
    (
        "wiki/dev-setup.md",
        """# Local development

Start the stack with `docker compose up`. The default local URL is
`{V}` - this is a throwaway container, not a real server.
""",
        "h18_doc_url",
        False,
    ),
    (
        "wiki/api-guide.es.md",
        """# Guía de la API de Datos Abiertos

Autenticación básica de ejemplo (del manual del proveedor):

```
curl -u usuario:contraseña https://datos.example.org/api/views/{V}.json
```

También puede usar `X-App-Token: {V2}`.
""",
        "h18_placeholder",
        False,
    ),
    (
        "wiki/incident-2023-11-ransomware-drill.md",
        """# Tabletop 2023-11: ransomware drill

Findings:

1. The break-glass domain admin password (`{V}`) was printed in the binder at the EOC.
2. The backup repository password (`{V2}`) was the same as in 2021.

Both were rotated after the exercise.
""",
        "h18_pw",
        True,
    ),
    (
        "wiki/security/hash-inventory.md",
        """# Known-good binaries on kiosks (SHA-256)

- SelfCheck.exe: `{V}`
- KioskShell.exe: `{V2}`
- CardReader.dll: `{V3}`
""",
        "digest",
        False,
    ),
    # ================================================================ misc code in more languages
    (
        "portal/app/models/resident.rb",
        """class Resident < ApplicationRecord
  has_secure_password
  validates :password, length: { minimum: 12 }, allow_nil: true

  ERR_BAD_PASSWORD = '{V}'.freeze
end
""",
        "h18_i18n",
        False,
    ),
    (
        "portal/config/initializers/geocoder.rb",
        """Geocoder.configure(
  lookup: :google,
  api_key: '{V}',
  timeout: 5,
  language: :es
)
""",
        "google",
        True,
    ),
    (
        "portal/config/google_oauth.json",
        """{
  "web": {
    "client_id": "{V}",
    "project_id": "cmb-portal",
    "auth_uri": "https://accounts.google.com/o/oauth2/auth",
    "redirect_uris": ["https://servicios.marisolbay.gov/auth/google/callback"]
  }
}
""",
        "google_client_id",
        False,
    ),
    (
        "dispatch/cad-gateway/src/hmac.ts",
        """import { createHmac } from 'crypto';

const SECRET = {V};

export function sign(body: string): string {
  return createHmac('sha256', SECRET).update(body).digest('hex');
}
""",
        "h18_js_ref",
        False,
    ),
    (
        "dispatch/cad-gateway/src/jwt.ts",
        """import jwt from 'jsonwebtoken';

const SIGNING_SECRET = '{V}';

export const issue = (unit: string) => jwt.sign({ unit }, SIGNING_SECRET, { expiresIn: '12h' });
""",
        "h18_jwt_secret",
        True,
    ),
    (
        "dispatch/cad-gateway/test/jwt.spec.ts",
        """import { verify } from '../src/jwt';

describe('mobile data terminal auth', () => {
  it('accepts a captured token from staging', () => {
    const token = '{V}';
    expect(() => verify(token)).not.toThrow();
  });
});
""",
        "jwt",
        True,
    ),
    (
        "srv311/mobile-app/ios/Config/GoogleService-Info.plist",
        """<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0">
<dict>
  <key>API_KEY</key>
  <string>{V}</string>
  <key>BUNDLE_ID</key>
  <string>gov.marisolbay.app311</string>
</dict>
</plist>
""",
        "google",
        True,
    ),
    (
        "traffic/analytics/queries/congestion.sql",
        """-- Peak congestion by corridor; sensor ids are the vendor serials
SELECT corridor, avg(occupancy)
FROM readings
WHERE sensor IN ('{V}', '{V2}', '{V3}')
  AND ts >= now() - interval '7 days'
GROUP BY corridor;
""",
        "h18_sensor_serial",
        False,
    ),
    (
        "traffic/analytics/notebooks/export.py",
        """import pandas as pd
import sqlalchemy

engine = sqlalchemy.create_engine("{V}")
df = pd.read_sql("select * from readings where ts > now() - interval '1 day'", engine)
df.to_parquet("readings.parquet")
""",
        "h18_uri",
        True,
    ),
    (
        "traffic/inventory/controllers.csv",
        """intersection,controller_mac,firmware_sha
Ocean Ave & 3rd,{V},{V4}
Harbor Blvd & Pier Rd,{V2},{V4}
Civic Center Dr & Main,{V3},{V4}
""",
        "h18_mac",
        False,
    ),
    (
        "library/patron-api/src/auth.php",
        """<?php
// Patron API used by the mobile app and the self-checkout kiosks
$ILS_API_CLIENT = 'cmb-mobile';
$ILS_API_SECRET = '{V}';
$SMTP_PASS = getenv('LIB_SMTP_PASS');
""",
        "h18_api_key",
        True,
    ),
    (
        "library/patron-api/src/auth.example.php",
        """<?php
$ILS_API_CLIENT = 'cmb-mobile';
$ILS_API_SECRET = {V};
""",
        "tune6_php_ref",
        False,
    ),
    (
        "library/patron-api/composer.lock",
        """{
    "packages": [
        {
            "name": "guzzlehttp/guzzle",
            "version": "7.8.1",
            "dist": {
                "type": "zip",
                "shasum": "{V}",
                "reference": "{V2}"
            }
        }
    ]
}
""",
        "git_sha",
        False,
    ),
    (
        "gis/go-tiler/go.sum",
        """github.com/paulmach/orb v0.11.1 {V}
github.com/paulmach/orb v0.11.1/go.mod {V2}
github.com/lib/pq v1.10.9 {V3}
""",
        "gosum_hash",
        False,
    ),
    (
        "infra/k8s/portal/ingress-tls.yaml",
        """apiVersion: v1
kind: Secret
metadata:
  name: portal-tls
  namespace: portal
type: kubernetes.io/tls
data:
  tls.crt: {V}
""",
        "b64_cert",
        False,
    ),
    (
        "infra/k8s/portal/registry-pull.yaml",
        """apiVersion: v1
kind: Secret
metadata:
  name: regcred
  namespace: portal
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: '{"auths":{"registry.cmb.local":{"auth":"{V}"}}}'
""",
        "h18_basic",
        True,
    ),
    (
        "infra/k8s/portal/configmap.yaml",
        """apiVersion: v1
kind: ConfigMap
metadata:
  name: portal-config
  namespace: portal
data:
  DEFAULT_LANG: es
  LOGIN_ERROR_ES: "{V}"
  SESSION_TTL: "{V2}"
""",
        "h18_i18n",
        False,
    ),
    (
        "infra/atlassian/jira_sync.py",
        """from jira import JIRA

jira = JIRA(
    server="https://cmb-it.atlassian.net",
    basic_auth=("it-automation@marisolbay.gov", "{V}"),
)
""",
        "atlassian",
        True,
    ),
    (
        "portal/locales/es.yml",
        """es:
  devise:
    failure:
      invalid: "{V}"
      timeout: "{V2}"
    passwords:
      no_token: "{V3}"
""",
        "h18_i18n",
        False,
    ),
    (
        "portal/scripts/seed_admin.sh",
        """#!/usr/bin/env bash
# seed the first portal admin on a fresh staging DB
python manage.py shell -c "
from accounts.models import Staff
Staff.objects.create_superuser('it-admin@marisolbay.gov', '{V}')
"
""",
        "h18_weak_pw",
        True,
    ),
    # ================================================================ additions
    (
        "portal/.env.staging",
        """# staging - servicios-stg.marisolbay.gov
POSTGRES_PASSWORD={V}
REDIS_PASSWORD={V2}
EMAIL_HOST_PASSWORD={V3}
DEBUG=false
""",
        "h18_pw",
        True,
    ),
    (
        "gis/etl/.pypirc",
        """[distutils]
index-servers = pypi

[pypi]
username = __token__
password = {V}
""",
        "pypi",
        True,
    ),
    (
        "infra/monitoring/grafana/api.env",
        """GRAFANA_URL=https://grafana.cmb.local
GRAFANA_TOKEN={V}
""",
        "grafana_sa",
        True,
    ),
    (
        "srv311/ivr/docs/es/configuracion.md",
        """# Configuración del IVR 311

1. Cuenta de Twilio: `AC5f1c2d3e4a5b6c7d8e9f0a1b2c3d4e5f` (SID de la cuenta, no es secreto).
2. Token de autenticación de la cuenta secundaria (respaldo): `{V}`
3. Idiomas: inglés y español (`es-MX`).
""",
        "h18_twilio_token",
        True,
    ),
    (
        "payroll-bridge/ansible/host_vars/payapp02.yml",
        """ansible_host: 10.30.4.2
ansible_connection: winrm
ansible_user: CMB\\svc-ansible
ansible_password: {V}
payroll_sql_sa_password: {V2}
""",
        "h18_weak_pw",
        True,
    ),
    (
        "library/ils-sso/sp-key.yaml",
        """saml:
  entity_id: https://catalogo.marisolbay.gov/saml
  idp_metadata: https://sts.cmb.local/FederationMetadata/2007-06/FederationMetadata.xml
  sp_private_key: |
    {IV}
""",
        "pkcs8_key",
        True,
    ),
    (
        "dispatch/cad-gateway/scripts/smoke.sh",
        """#!/usr/bin/env bash
# quick smoke test against the CAD training environment
curl -fsS -H "Authorization: Bearer {V}" \\
  https://cad-train.vendor.example.com/api/v5/units?agency=CMBFD | jq '.units | length'
""",
        "h18_api_key",
        True,
    ),
    (
        "traffic/k8s/tsdb-values.yaml",
        """# helm upgrade tsdb bitnami/postgresql -f tsdb-values.yaml
auth:
  username: sensor_ingest
  database: traffic
  password: "{V}"
  postgresPassword: "{V2}"
primary:
  persistence:
    size: 200Gi
""",
        "h18_pw",
        True,
    ),
    (
        "infra/mail/postfix/sasl_passwd",
        """[smtp.sendgrid.net]:587 apikey:{V}
""",
        "sendgrid",
        True,
    ),
    (
        "portal/config/database.yml",
        """production:
  adapter: postgis
  host: pg-portal.cmb.local
  database: residents
  username: portal_app
  password: {V}
  pool: 10
""",
        "h18_url_pw",
        True,
    ),
]
