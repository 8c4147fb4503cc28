"""Templates of the third held-out part of the evaluation corpus (see ``evalset.py``).

Written blind by a separate author, before any rule change of round 4: without reading
the scanner's rules, its tests, or the other parts' templates, from what real
repositories leak (configs, CI files, cassettes, notebooks, code in many languages) and
the look-alikes they hold. Never edited to fit results; only its totals are reported.

Label rule: positive = a concrete value that would grant access if live (weak test
passwords included); negative = anything else (placeholders, references to a secret
store or the environment, hashes, public keys, certificates, encrypted keys, ids,
digests, messages about passwords, credentials on documentation hosts).

Slots: ``{V}``, ``{V2}``, ... are separate values of the template's kind, each labelled;
``{IV}`` indents a multi-line value's later lines like its own line.
"""

from __future__ import annotations

from evalset import Template

#: ``evalset.build`` renders this part's slots with ``_render_slots``.
MULTI_SLOT = True

_JWK_X = "RXx2nznYZEGZwOW9vPvIWzfOkcveH8Gw6mtE8TBDbdc"
_JWK_Y = "Kf5pvZ6M66agfR3sJbGwh-_ibAf_DSHX2wszd3c4pcY"

POSITIVE: list[Template] = [
    # -- Authorization set through calls, cassettes, curl ---------------------------------
    (
        "internal/registry/client.go",
        "func (c *Client) do(req *http.Request) (*http.Response, error) {\n"
        '\treq.Header.Set("Accept", "application/json")\n'
        '\treq.Header.Set("Authorization", "Basic {V}")\n'
        "\treturn c.http.Do(req)\n}\n",
        "basic",
        True,
    ),
    (
        "scripts/sync_issues.py",
        "import requests\n\n"
        "session = requests.Session()\n"
        'session.headers.update({"Authorization": "token {V}", "Accept": "application/vnd.github+json"})\n'
        'resp = session.get("https://api.github.com/repos/acme-corp/platform/issues")\n',
        "github",
        True,
    ),
    (
        "tools/export_tickets.py",
        "def fetch(page):\n"
        "    return httpx.get(\n"
        '        "https://acme.zendesk.com/api/v2/tickets.json",\n'
        '        headers={"Authorization": f"Bearer {V}"},\n'
        '        params={"page": page},\n'
        "    )\n",
        "bearer",
        True,
    ),
    (
        "tests/cassettes/test_list_repos.yaml",
        "interactions:\n"
        "- request:\n"
        "    body: null\n"
        "    headers:\n"
        "      Accept:\n"
        "      - application/vnd.github+json\n"
        "      Authorization:\n"
        "      - token {V}\n"
        "      User-Agent:\n"
        "      - python-requests/2.31.0\n"
        "    method: GET\n"
        "    uri: https://api.github.com/user/repos?per_page=100\n"
        "  response:\n"
        "    status: {code: 200, message: OK}\n",
        "github_oauth",
        True,
    ),
    (
        "spec/fixtures/vcr_cassettes/billing/charge.yml",
        "---\n"
        "http_interactions:\n"
        "- request:\n"
        "    method: post\n"
        "    uri: https://api.recurly.com/v2/accounts\n"
        "    headers:\n"
        "      Accept:\n"
        "      - application/xml\n"
        "      Authorization:\n"
        "      - Basic {V}\n"
        "  response:\n"
        "    status:\n"
        "      code: 201\n",
        "basic",
        True,
    ),
    (
        "README.md",
        "## Quick check\n\n"
        "```sh\n"
        'curl -s -H "Authorization: Bearer {V}" \\\n'
        "  https://api.render.com/v1/services?limit=20 | jq .\n"
        "```\n",
        "bearer",
        True,
    ),
    (
        "deploy/upload-artifact.sh",
        "#!/usr/bin/env bash\nset -euo pipefail\n"
        'curl --fail -u deployer:{V} --upload-file "dist/app-$VERSION.tar.gz" \\\n'
        '  "https://nexus.build.acme.io/repository/releases/app/$VERSION/"\n',
        "password",
        True,
    ),
    (
        "docs/api/payments.md",
        "Create a refund:\n\n"
        "    curl https://api.stripe.com/v1/refunds \\\n"
        "      -u {V}: \\\n"
        "      -d charge=ch_3MmlLrLkdIwHu7ix0snN0B15\n",
        "stripe",
        True,
    ),
    (
        "src/api/client.ts",
        "export async function listOrders(): Promise<Order[]> {\n"
        "  const res = await fetch(`${BASE_URL}/orders`, {\n"
        "    headers: {\n"
        "      'Content-Type': 'application/json',\n"
        "      Authorization: 'Bearer {V}',\n"
        "    },\n"
        "  });\n"
        "  return res.json();\n}\n",
        "jwt",
        True,
    ),
    (
        "src/services/http.js",
        "import axios from 'axios';\n\n"
        "axios.defaults.baseURL = 'https://api.airtable.com/v0';\n"
        "axios.defaults.headers.common['X-API-Key'] = '{V}';\n",
        "api_key",
        True,
    ),
    (
        "crates/notify/src/lib.rs",
        "pub async fn send(msg: &str) -> reqwest::Result<()> {\n"
        "    reqwest::Client::new()\n"
        '        .post("https://api.pushover.net/1/messages.json")\n'
        '        .bearer_auth("{V}")\n'
        '        .json(&serde_json::json!({ "message": msg }))\n'
        "        .send()\n"
        "        .await?;\n"
        "    Ok(())\n}\n",
        "bearer",
        True,
    ),
    # -- bare and credential-named assignments -------------------------------------------
    (
        "weather/settings.py",
        "WEATHER_API = {\n"
        '    "url": "https://api.openweathermap.org/data/2.5",\n'
        '    "key": "{V}",\n'
        '    "units": "metric",\n'
        "}\n",
        "hex32",
        True,
    ),
    (
        "bot/twitter_client.py",
        "import tweepy\n\n"
        'consumer_key = "{V}"\n'
        "consumer_secret = os.environ['TW_CONSUMER_SECRET']\n",
        "twitter_key",
        True,
    ),
    (
        "bot/config.py",
        "TWITTER = dict(\n"
        "    consumer_key=os.environ.get('TW_KEY'),\n"
        '    consumer_secret="{V}",\n'
        ")\n",
        "twitter_secret",
        True,
    ),
    (
        "config/services.yml",
        "geocoder:\n  provider: locationiq\n  api_key: {V}\n  timeout: 5\n",
        "uuid_key",
        True,
    ),
    (
        "lib/oauth.py",
        "oauth.register(\n"
        '    name="azure",\n'
        '    client_id="4f1c2a9e-8d7b-4c3e-9a51-0b6d2e7f8a13",\n'
        '    client_secret="{V}",\n'
        "    server_metadata_url=AZURE_METADATA,\n"
        ")\n",
        "azure_client_secret",
        True,
    ),
    (
        "wp-config.php",
        "define( 'AUTH_KEY',         'put your unique phrase here' );\n"
        "define( 'NONCE_KEY',        '{V}' );\n",
        "wp_salt",
        True,
    ),
    (
        "validator/config.toml",
        '[validator]\nname = "node-eu-2"\nseed = "{V}"\nrpc = "127.0.0.1:26657"\n',
        "hex64",
        True,
    ),
    (
        ".netrc",
        "machine api.heroku.com\n  login ops@acme.io\n  password {V}\n",
        "uuid_key",
        True,
    ),
    # -- shell continuation, Markdown and TOML docs ---------------------------------------
    (
        "scripts/run-local-db.sh",
        "docker run -d --name pg \\\n"
        "  -e POSTGRES_USER=shop \\\n"
        "  -e POSTGRES_PASSWORD={V} \\\n"
        "  -p 5432:5432 postgres:16\n",
        "password",
        True,
    ),
    (
        "ci/publish.sh",
        "aws configure set aws_secret_access_key {V} \\\n    --profile release\n",
        "aws_secret",
        True,
    ),
    (
        "docs/setup.md",
        "## Configuration\n\n"
        "Create a `.env` file in the project root:\n\n"
        "```\n"
        "NODE_ENV=development\n"
        "MAILGUN_DOMAIN=mg.acme.io\n"
        "MAILGUN_API_KEY={V}\n"
        "```\n",
        "mailgun",
        True,
    ),
    (
        "netlify.toml",
        '[build]\n  command = "npm run build"\n  publish = "public"\n\n'
        "[context.production.environment]\n"
        '  CONTENTFUL_DELIVERY_TOKEN = "{V}"\n',
        "b64_api_key",
        True,
    ),
    (
        ".cargo/credentials.toml",
        '[registry]\ntoken = "{V}"\n',
        "crates_io",
        True,
    ),
    (
        "docs/deploy.toml",
        "# values used by the staging deploy\n"
        "[env]\n"
        'DATABASE_URL = "postgres://inventory:{V}@10.0.3.12:5432/inventory"\n',
        "url_password",
        True,
    ),
    # -- NATS, JWK, weak test passwords ------------------------------------------------------
    (
        "deploy/nats/ingest.creds",
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        "{V}\n"
        "------END USER NKEY SEED------\n",
        "nkey",
        True,
    ),
    (
        "cmd/publisher/main.go",
        "func connect() (*nats.Conn, error) {\n"
        '\tkp, err := nkeys.FromSeed([]byte("{V}"))\n'
        "\tif err != nil {\n\t\treturn nil, err\n\t}\n"
        "\treturn nats.Connect(url, nats.Nkey(pub, kp.Sign))\n}\n",
        "nkey",
        True,
    ),
    (
        "config/jwks/signing-key.json",
        "{\n"
        '  "kty": "EC",\n'
        '  "crv": "P-256",\n'
        '  "kid": "2024-09-signing",\n'
        f'  "x": "{_JWK_X}",\n'
        f'  "y": "{_JWK_Y}",\n'
        '  "d": "{V}",\n'
        '  "use": "sig"\n'
        "}\n",
        "jwk_d",
        True,
    ),
    (
        "tests/test_login.py",
        "def test_login_redirects(client, user_factory):\n"
        '    user_factory(username="marta")\n'
        '    resp = client.post("/login", data={"username": "marta", "password": "{V}"})\n'
        "    assert resp.status_code == 302\n",
        "weak_password",
        True,
    ),
    (
        "src/test/java/io/acme/auth/AuthControllerTest.java",
        "    @Test\n    void rejectsDisabledUser() throws Exception {\n"
        '        var token = new UsernamePasswordAuthenticationToken("disabled", "{V}");\n'
        "        assertThrows(DisabledException.class, () -> manager.authenticate(token));\n"
        "    }\n",
        "weak_password",
        True,
    ),
    (
        "docker-compose.test.yml",
        "services:\n  mysql:\n    image: mysql:8.0\n    environment:\n"
        "      MYSQL_DATABASE: app_test\n"
        "      MYSQL_ROOT_PASSWORD: {V}\n",
        "weak_password",
        True,
    ),
    (
        "server/nats_test.go",
        "func TestPublish(t *testing.T) {\n"
        '\tnc, err := nats.Connect("nats://derek:{V}@localhost:4222")\n'
        "\trequire.NoError(t, err)\n\tdefer nc.Close()\n}\n",
        "weak_password",
        True,
    ),
    (
        "tests/conftest.py",
        '@pytest.fixture\ndef broker_url():\n    return "amqp://worker:{V}@127.0.0.1:5672/%2F"\n',
        "weak_password",
        True,
    ),
    (
        "e2e/login.spec.ts",
        "test('admin can log in', async ({ page }) => {\n"
        "  await page.fill('#email', 'admin@acme.io');\n"
        "  await page.fill('#password', '{V}');\n"
        "  await page.click('button[type=submit]');\n});\n",
        "weak_password",
        True,
    ),
    # -- several private keys in one file ----------------------------------------------------
    (
        "tests/certs/keys.pem",
        "{V}\n{V2}\n{V3}\n",
        "pem",
        True,
    ),
    (
        "internal/tlsutil/testdata_test.go",
        "package tlsutil\n\nconst serverKeyPEM = `{V}`\n\nconst clientKeyPEM = `{V2}`\n",
        "pkcs8_key",
        True,
    ),
    (
        "deploy/ssh/id_ed25519",
        "{V}\n",
        "openssh_key",
        True,
    ),
    (
        "charts/gateway/values-prod.yaml",
        "tls:\n  enabled: true\n  key: |\n    {IV}\n",
        "ec_key",
        True,
    ),
    # -- cloud SDK configs ---------------------------------------------------------------------
    (
        ".aws/credentials",
        "[default]\nregion = eu-central-1\n{V}\n",
        "aws_ini_pair",
        True,
    ),
    (
        ".github/workflows/deploy.yml",
        "jobs:\n  deploy:\n    runs-on: ubuntu-latest\n    env:\n"
        "      {IV}\n"
        "      AWS_REGION: us-east-1\n"
        "    steps:\n      - uses: actions/checkout@v4\n",
        "aws_yaml_pair",
        True,
    ),
    (
        "infra/main.tf",
        'provider "aws" {\n  region     = "eu-west-1"\n  {IV}\n}\n',
        "aws_tf_pair",
        True,
    ),
    (
        "keys/gcp-ci.json",
        "{\n"
        '  "type": "service_account",\n'
        '  "project_id": "acme-analytics-prod",\n'
        '  "private_key_id": "a2e81478007152dea8651f3fce59796168e9338b",\n'
        '  "private_key": "{V}",\n'
        '  "client_email": "ci-runner@acme-analytics-prod.iam.gserviceaccount.com",\n'
        '  "client_id": "104883312209843712456",\n'
        '  "token_uri": "https://oauth2.googleapis.com/token"\n'
        "}\n",
        "gcp_private_key",
        True,
    ),
    (
        "src/Api/appsettings.Production.json",
        "{\n"
        '  "Storage": {\n'
        '    "ConnectionString": "DefaultEndpointsProtocol=https;AccountName=stacmeprod;'
        'AccountKey={V};EndpointSuffix=core.windows.net"\n'
        "  }\n}\n",
        "azure_key",
        True,
    ),
    (
        "terraform/prod.tfvars",
        'region      = "nyc3"\ndroplet_size = "s-2vcpu-4gb"\ndo_token    = "{V}"\n',
        "digitalocean",
        True,
    ),
    (
        "terraform/terraform.tfvars",
        'db_username = "billing"\ndb_password = "{V}"\n',
        "password",
        True,
    ),
    # -- Kubernetes, Helm, Docker ---------------------------------------------------------------
    (
        "k8s/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: payments-db\ntype: Opaque\n"
        "stringData:\n  DB_USER: payments\n  DB_PASSWORD: {V}\n",
        "password",
        True,
    ),
    (
        "k8s/api-token-secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: search-api\ndata:\n  token: {V}\n",
        "b64_api_key",
        True,
    ),
    (
        "manifests/secret.json",
        "{\n"
        '  "apiVersion": "v1",\n'
        '  "kind": "Secret",\n'
        '  "metadata": {"name": "smtp", "namespace": "notifier"},\n'
        '  "data": {"password": "{V}"}\n'
        "}\n",
        "b64_password",
        True,
    ),
    (
        "ci/kubeconfig",
        "apiVersion: v1\nkind: Config\nusers:\n- name: ci-deployer\n  user:\n    token: {V}\n",
        "jwt",
        True,
    ),
    (
        "charts/shop/values.yaml",
        'postgresql:\n  enabled: true\n  auth:\n    username: shop\n    password: "{V}"\n'
        "    database: shop\n",
        "password",
        True,
    ),
    (
        ".docker/config.json",
        '{\n  "auths": {\n    "registry.gitlab.com": {\n      "auth": "{V}"\n    }\n  }\n}\n',
        "basic",
        True,
    ),
    (
        "Dockerfile",
        "FROM node:20-alpine\nWORKDIR /app\nENV NPM_TOKEN={V}\nRUN npm ci --omit=dev\n",
        "npm",
        True,
    ),
    # -- framework configs ----------------------------------------------------------------------
    (
        "src/main/resources/application.yml",
        "spring:\n  datasource:\n    url: jdbc:postgresql://pg-prod:5432/orders\n"
        "    username: orders\n    password: {V}\n  jpa:\n    open-in-view: false\n",
        "password",
        True,
    ),
    (
        "src/main/resources/application-prod.properties",
        "spring.mail.host=smtp.sendgrid.net\nspring.mail.username=apikey\n"
        "spring.mail.password={V}\n",
        "sendgrid",
        True,
    ),
    (
        "Acme.Web/appsettings.json",
        "{\n"
        '  "ConnectionStrings": {\n'
        '    "DefaultConnection": "Server=sql-prod-01;Database=Acme;User Id=acme_web;'
        'Password={V};TrustServerCertificate=True"\n'
        "  },\n"
        '  "Logging": { "LogLevel": { "Default": "Information" } }\n'
        "}\n",
        "password",
        True,
    ),
    (
        "config/database.php",
        "        'mysql' => [\n"
        "            'driver' => 'mysql',\n"
        "            'host' => env('DB_HOST', '127.0.0.1'),\n"
        "            'username' => env('DB_USERNAME', 'forge'),\n"
        "            'password' => env('DB_PASSWORD', '{V}'),\n"
        "        ],\n",
        "password",
        True,
    ),
    (
        "config/database.yml",
        "production:\n  <<: *default\n  database: shop_production\n  username: shop\n"
        "  password: {V}\n",
        "password",
        True,
    ),
    (
        "config/secrets.yml",
        "production:\n  secret_key_base: {V}\n",
        "hex128",
        True,
    ),
    (
        "mysite/settings.py",
        "# SECURITY WARNING: keep the secret key used in production secret!\n"
        "SECRET_KEY = '{V}'\n\nDEBUG = False\n",
        "django_key",
        True,
    ),
    (
        ".env",
        "APP_NAME=Acme\nAPP_ENV=production\nAPP_KEY=base64:{V}\nAPP_DEBUG=false\n",
        "b64_secret",
        True,
    ),
    # -- notebooks, shell, PowerShell ------------------------------------------------------------
    (
        "notebooks/summarise.ipynb",
        '{\n "cells": [\n  {\n   "cell_type": "code",\n   "execution_count": 3,\n'
        '   "metadata": {},\n   "outputs": [],\n   "source": [\n'
        '    "from openai import OpenAI\\n",\n'
        '    "client = OpenAI(api_key=\\"{V}\\")\\n"\n'
        "   ]\n  }\n ],\n"
        ' "nbformat": 4,\n "nbformat_minor": 5\n}\n',
        "openai",
        True,
    ),
    (
        "scripts/env.sh",
        "export GITHUB_TOKEN={V}\nexport GOPRIVATE=github.com/acme-corp/*\n",
        "github",
        True,
    ),
    (
        "scripts/New-ServiceUser.ps1",
        '$secpass = ConvertTo-SecureString "{V}" -AsPlainText -Force\n'
        '$cred = New-Object System.Management.Automation.PSCredential ("ACME\\svc-sync", $secpass)\n',
        "password",
        True,
    ),
    # -- source code ---------------------------------------------------------------------------------
    (
        "internal/store/mysql.go",
        'db, err := sql.Open("mysql", "shop:{V}@tcp(127.0.0.1:3306)/shop?parseTime=true")\n',
        "url_password",
        True,
    ),
    (
        "src/main/java/io/acme/report/Db.java",
        "    Connection c = DriverManager.getConnection(\n"
        '        "jdbc:oracle:thin:@ora-prod:1521/REP", "report", "{V}");\n',
        "password",
        True,
    ),
    (
        "Acme.Mailer/MailService.cs",
        'var smtp = new SmtpClient("smtp.office365.com", 587)\n{\n'
        '    Credentials = new NetworkCredential("noreply@acme.io", "{V}"),\n'
        "    EnableSsl = true,\n};\n",
        "password",
        True,
    ),
    (
        "app/src/main/kotlin/io/acme/maps/Keys.kt",
        'object Keys {\n    const val MAPS_API_KEY = "{V}"\n}\n',
        "google",
        True,
    ),
    (
        "AcmeApp/Config/Secrets.swift",
        'enum Secrets {\n    static let clientSecret = "{V}"\n}\n',
        "api_key",
        True,
    ),
    (
        "sync/directory.py",
        "conn = Connection(server, 'cn=admin,dc=acme,dc=local', '{V}', auto_bind=True)\n",
        "password",
        True,
    ),
    (
        "alerts/mailer.py",
        "with smtplib.SMTP_SSL('smtp.gmail.com', 465) as server:\n"
        "    server.login('alerts.acme@gmail.com', '{V}')\n",
        "password",
        True,
    ),
    (
        "deploy/redis-check.sh",
        "redis-cli -h cache-prod -a {V} --no-auth-warning ping\n",
        "url_password",
        True,
    ),
    (
        "firmware/sensor.py",
        'client = mqtt.Client(client_id="sensor-17")\n'
        'client.username_pw_set("sensor", "{V}")\n'
        'client.connect("mqtt.acme.io", 8883)\n',
        "password",
        True,
    ),
    (
        "db/migrations/0003_reporting_user.sql",
        "CREATE USER 'reporting'@'%' IDENTIFIED BY '{V}';\n"
        "GRANT SELECT ON shop.* TO 'reporting'@'%';\n",
        "password",
        True,
    ),
    # -- webhooks and SaaS tokens -----------------------------------------------------------------
    (
        "alerting/notify.py",
        'SLACK_WEBHOOK_URL = "{V}"\n',
        "slack_webhook",
        True,
    ),
    (
        "bot/index.js",
        "const hook = new WebhookClient({ url: '{V}' });\n",
        "discord_webhook",
        True,
    ),
    (
        "monitoring/alertmanager.yml",
        "receivers:\n  - name: teams\n    msteams_configs:\n      - webhook_url: '{V}'\n",
        "teams_webhook",
        True,
    ),
    (
        "sms/send.py",
        'client = Client("AC3706d85c524e440066559a6656c90bd5", "{V}")\n',
        "hex32",
        True,
    ),
    (
        ".gitlab-ci.yml",
        "release:\n  stage: deploy\n  variables:\n    GITLAB_TOKEN: {V}\n"
        "  script:\n    - npx semantic-release\n",
        "gitlab",
        True,
    ),
    (
        ".npmrc",
        "@acme:registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken={V}\n",
        "npm",
        True,
    ),
    (
        ".pypirc",
        "[distutils]\nindex-servers = pypi\n\n[pypi]\nusername = __token__\npassword = {V}\n",
        "pypi",
        True,
    ),
    (
        "app/shopify.server.ts",
        "const session = { shop: 'acme-store.myshopify.com', accessToken: '{V}' };\n",
        "shopify",
        True,
    ),
    (
        "tools/jira_sync.py",
        'JIRA = JIRA(server="https://acme.atlassian.net", basic_auth=("bot@acme.io", "{V}"))\n',
        "atlassian",
        True,
    ),
    (
        ".github/workflows/review-app.yml",
        "    steps:\n      - uses: akhileshns/heroku-deploy@v3.13.15\n        with:\n"
        "          heroku_api_key: {V}\n          heroku_app_name: acme-review\n",
        "heroku",
        True,
    ),
    (
        "collections/Acme API.postman_collection.json",
        '{\n  "auth": {\n    "type": "bearer",\n    "bearer": [\n'
        '      {"key": "token", "value": "{V}", "type": "string"}\n'
        "    ]\n  }\n}\n",
        "bearer",
        True,
    ),
    (
        "ops/slack_export.py",
        'client = WebClient(token="{V}")\n',
        "slack_user",
        True,
    ),
    (
        "wg0.conf",
        "[Interface]\nAddress = 10.8.0.2/24\nPrivateKey = {V}\nDNS = 10.8.0.1\n",
        "b64_secret",
        True,
    ),
    (
        "services/orders/.env",
        "MONGO_URL=mongodb+srv://orders:{V}@cluster0.x8k2p.mongodb.net/orders?retryWrites=true\n",
        "url_password",
        True,
    ),
]

NEGATIVE: list[Template] = [
    # -- placeholders and references -------------------------------------------------------------
    (
        ".env.example",
        "STRIPE_SECRET_KEY={V}\nSTRIPE_PUBLISHABLE_KEY=\n",
        "placeholder3",
        False,
    ),
    (
        "charts/api/values.yaml",
        "database:\n  host: postgres\n  user: api\n  password: {V}\n",
        "placeholder",
        False,
    ),
    (
        "docs/configuration.md",
        "| Variable | Example |\n|---|---|\n| `SENDGRID_API_KEY` | `{V}` |\n",
        "placeholder2",
        False,
    ),
    (
        "k8s/deployment.yaml",
        "        env:\n          - name: DB_PASSWORD\n            valueFrom:\n"
        "              secretKeyRef:\n                name: {V}\n                key: password\n",
        "secret_name",
        False,
    ),
    (
        "app/config.py",
        "DB_PASSWORD = {V}\n",
        "env_ref",
        False,
    ),
    (
        "deploy/task-definition.json",
        '      "secrets": [\n        {\n          "name": "DB_PASSWORD",\n'
        '          "valueFrom": "{V}"\n        }\n      ],\n',
        "secret_arn",
        False,
    ),
    (
        "config/app.env.tpl",
        "DATABASE_PASSWORD={V}\n",
        "op_ref",
        False,
    ),
    (
        "terraform/rds.tf",
        'resource "aws_db_instance" "main" {\n  username = "app"\n  password = {V}\n}\n',
        "placeholder2",
        False,
    ),
    (
        "Jenkinsfile",
        "withCredentials([usernamePassword(credentialsId: '{V}', usernameVariable: 'U', "
        "passwordVariable: 'P')]) {\n  sh 'docker login -u $U -p $P registry.acme.io'\n}\n",
        "secret_name",
        False,
    ),
    (
        "tests/test_redaction.py",
        "def test_masks_token():\n    assert redact(SAMPLE) == 'token={V}'\n",
        "placeholder3",
        False,
    ),
    # -- non-credential code using credential names -----------------------------------------------
    (
        "accounts/forms.py",
        "def clean(self):\n    password = self.cleaned_data.get('{V}')\n"
        "    validate_password(password, self.user)\n",
        "form_field",
        False,
    ),
    (
        "auth/token.py",
        'payload = {"grant_type": "{V}", "client_id": CLIENT_ID, "scope": "openid"}\n',
        "grant_type",
        False,
    ),
    (
        "openapi.yaml",
        "components:\n  securitySchemes:\n    ApiKeyAuth:\n      type: apiKey\n      in: header\n"
        "      name: {V}\n",
        "header_name",
        False,
    ),
    (
        "templates/base.html",
        '<script nonce="{V}" src="/static/app.js"></script>\n',
        "csp_nonce",
        False,
    ),
    # -- ids, hashes, digests ---------------------------------------------------------------------
    (
        "tests/fixtures/order_created.json",
        '{\n  "event": "order.created",\n  "requestId": "{V}",\n  "amount": 4200\n}\n',
        "request_id",
        False,
    ),
    (
        "tests/cassettes/get_user.yaml",
        "  response:\n    headers:\n      X-Request-Id:\n      - {V}\n      Content-Type:\n"
        "      - application/json\n",
        "request_id",
        False,
    ),
    (
        "src/Api/appsettings.json",
        '{\n  "AzureAd": {\n    "Instance": "https://login.microsoftonline.com/",\n'
        '    "TenantId": "{V}",\n    "CallbackPath": "/signin-oidc"\n  }\n}\n',
        "uuid_key",
        False,
    ),
    (
        "src/authConfig.js",
        "export const msalConfig = {\n  auth: {\n    clientId: '{V}',\n"
        "    authority: 'https://login.microsoftonline.com/common',\n  },\n};\n",
        "request_id",
        False,
    ),
    (
        ".github/workflows/ci.yml",
        "    steps:\n      - uses: actions/checkout@{V} # v4.1.1\n      - run: make test\n",
        "git_sha",
        False,
    ),
    (
        "package-lock.json",
        '    "node_modules/jsonwebtoken": {\n      "version": "9.0.2",\n'
        '      "integrity": "{V}"\n    },\n',
        "sri",
        False,
    ),
    (
        "go.sum",
        "golang.org/x/crypto v0.21.0 {V}\n",
        "gosum_hash",
        False,
    ),
    (
        "requirements.txt",
        "cryptography==42.0.5 \\\n    --hash=sha256:{V}\n",
        "digest",
        False,
    ),
    (
        "Dockerfile.python",
        "FROM buildpack-deps:bookworm\nENV GPG_KEY {V}\nENV PYTHON_VERSION 3.12.3\n",
        "gpg_fpr",
        False,
    ),
    (
        "db/seeds/users.sql",
        "INSERT INTO users (email, password_hash) VALUES ('ops@acme.io', '{V}');\n",
        "bcrypt",
        False,
    ),
    (
        "deploy/nginx/.htpasswd",
        "admin:{V}\n",
        "apr1",
        False,
    ),
    (
        "fixtures/users.json",
        '[{"model": "auth.user", "pk": 1, "fields": {"username": "admin", "password": "{V}"}}]\n',
        "pbkdf2_django",
        False,
    ),
    (
        "cloud-init/user-data.yaml",
        "users:\n  - name: ops\n    passwd: {V}\n    lock_passwd: false\n",
        "sha512crypt",
        False,
    ),
    (
        "db/dump/roles.sql",
        "ALTER ROLE analytics WITH LOGIN PASSWORD '{V}';\n",
        "scram_verifier",
        False,
    ),
    (
        "mosquitto/passwd",
        "sensor:{V}\n",
        "mosquitto_hash",
        False,
    ),
    # -- public keys, certificates, encrypted keys ---------------------------------------------------
    (
        "deploy/nats/server.conf",
        "authorization {\n  users: [\n    { nkey: {V} }\n  ]\n}\n",
        "nkey_public",
        False,
    ),
    (
        "public/.well-known/jwks.json",
        '{"keys": [{"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256", "e": "AQAB",\n'
        '  "n": "{V}"}]}\n',
        "rsa_n",
        False,
    ),
    (
        "config/jwt/public.pem",
        "{V}\n",
        "public_pem",
        False,
    ),
    (
        "KEYS",
        "pub   rsa4096 2021-03-04 [SC]\n{V}\n",
        "pgp_public",
        False,
    ),
    (
        ".sops.yaml",
        "creation_rules:\n  - path_regex: secrets/.*\\.yaml$\n    age: {V}\n",
        "age_public",
        False,
    ),
    (
        "cloud-init/ssh.yaml",
        "ssh_authorized_keys:\n  - {V}\n",
        "ssh_public",
        False,
    ),
    (
        "certs/ca.crt",
        "{V}\n",
        "certificate",
        False,
    ),
    (
        "ci/kubeconfig.yaml",
        "clusters:\n- cluster:\n    certificate-authority-data: {V}\n"
        "    server: https://10.0.0.1:6443\n  name: prod\n",
        "b64_cert",
        False,
    ),
    (
        "deploy/keys/server.key.enc",
        "{V}\n",
        "encrypted_key",
        False,
    ),
    (
        "certs/legacy.key",
        "{V}\n",
        "legacy_encrypted_key",
        False,
    ),
    (
        "group_vars/prod/vault.yml",
        "{V}\n",
        "ansible_vault",
        False,
    ),
    (
        "secrets/prod.enc.yaml",
        "db:\n  password: {V}\n",
        "sops_value",
        False,
    ),
    (
        "k8s/sealed-db.yaml",
        "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nspec:\n  encryptedData:\n"
        "    password: {V}\n",
        "sealed",
        False,
    ),
    # -- messages, docs hosts, public identifiers, fakes ----------------------------------------------
    (
        "src/locales/el.json",
        '{\n  "PASSWORDS_NOT_MATCHING": "{V}",\n  "SAVE": "OK"\n}\n',
        "i18n3",
        False,
    ),
    (
        "config/locales/messages.yml",
        'errors:\n  password_invalid: "{V}"\n',
        "i18n",
        False,
    ),
    (
        "app/i18n/auth.ts",
        "export const messages = {\n  tokenExpired: '{V}',\n};\n",
        "i18n2",
        False,
    ),
    (
        "docs/database.md",
        "Connect with:\n\n    psql postgres://app:Tr0ub4dor@{V}:5432/app\n",
        "example_host",
        False,
    ),
    (
        "README.rst",
        "Set ``REDIS_URL=redis://:hunter22@{V}:6379/0`` in your environment.\n",
        "example_host",
        False,
    ),
    (
        "web/checkout.js",
        "const stripe = Stripe('{V}');\n",
        "stripe_pk",
        False,
    ),
    (
        "web/index.html",
        '<meta name="google-signin-client_id" content="{V}">\n',
        "google_client_id",
        False,
    ),
    (
        "tests/test_aws.py",
        'os.environ["AWS_ACCESS_KEY_ID"] = "{V}"\n',
        "aws_example",
        False,
    ),
    (
        "tests/test_token_format.py",
        "def test_rejects_bad_checksum():\n    assert not is_valid_token('{V}')\n",
        "bad_github",
        False,
    ),
    (
        "web/static/logo.js",
        "export const LOGO = 'data:image/png;base64,{V}';\n",
        "png_b64",
        False,
    ),
    (
        "src/errors.py",
        'AUTH_ERRORS = {\n    "E1042": "Password must be {V} characters long",\n}\n',
        "number_words",
        False,
    ),
]

TEMPLATES: list[Template] = POSITIVE + NEGATIVE
