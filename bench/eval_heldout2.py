"""Second held-out part of the evaluation corpus (see ``evalset.py``), written in round 3.

Written *before* any rule change of that round and never edited to fit results: the
scanner is never tuned on it and its misses are never listed (only totals are printed).
It has its own seed, its own word lists and users (``Values(..., "heldout2")``), and
shapes the other parts lack: Kubernetes Secret ``data:`` values in base64, ``.pgpass``
lines, passwords in prose, cloud and SaaS token formats, credential helpers' files
(``.pypirc``, ``.netrc``, ``.npmrc``, Docker ``config.json``), service-account JSON,
and look-alikes of each. Each entry: (path, text with one ``{V}`` slot, value generator,
is-a-credential).
"""

from __future__ import annotations

TEMPLATES = [
    # ---------------------------------------------------------------- configs and dotfiles
    (".pgpass", "pg-primary.lan:5432:billing:billing_rw:{V}\n", "password", True),
    (
        ".pgpass",
        "# hostname:port:database:username:password\n*:*:*:postgres:{V}\n",
        "passphrase",
        True,
    ),
    (
        ".pypirc",
        "[distutils]\nindex-servers = internal\n\n[internal]\nrepository = https://pypi.corp.lan/\nusername = uploader\npassword = {V}\n",
        "password",
        True,
    ),
    (".netrc", "machine git.corp.lan\n  login buildbot\n  password {V}\n", "password", True),
    (".npmrc", "registry=https://npm.corp.lan/\n_auth={V}\nalways-auth=true\n", "basic", True),
    (
        ".docker/config.json",
        '{\n  "auths": {\n    "registry.corp.lan": {\n      "auth": "{V}"\n    }\n  }\n}\n',
        "basic",
        True,
    ),
    (
        "pip.conf",
        "[global]\nindex-url = https://deploy:{V}@artifacts.corp.lan/api/pypi/simple\n",
        "password",
        True,
    ),
    (
        "config/mongo.yaml",
        "mongodb:\n  uri: mongodb+srv://analytics:{V}@cluster0.x1y2z.mongodb.net/prod\n",
        "password",
        True,
    ),
    ("config/cache.env", "REDIS_URL=redis://:{V}@redis-master:6379/0\n", "password", True),
    (
        "config/jdbc.properties",
        "jdbc.url=jdbc:mysql://mysql01:3306/crm?user=crm&password={V}&useSSL=true\n",
        "password",
        True,
    ),
    (
        "config/app.toml",
        '[mail]\nsmtp_host = "smtp.corp.lan"\nsmtp_pass = "{V}"\n',
        "leet_password",
        True,
    ),
    ("config/app.toml", '[mail]\nsmtp_pass = "{V}"\n', "placeholder2", False),
    ("config/app.toml", "[auth]\ntoken_ttl = {V}\n", "duration", False),
    ("config/secrets.env", "DB_PASSWORD_FILE={V}\n", "secret_path", False),
    (
        "config/logging.yaml",
        "handlers:\n  audit:\n    redact: [password, token]\n    mask: '{V}'\n",
        "placeholder2",
        False,
    ),
    (
        "conf/server.xml",
        '<Resource name="jdbc/crm" username="crm" password="{V}" />\n',
        "password",
        True,
    ),
    # ---------------------------------------------------------------- kubernetes, helm, compose
    (
        "k8s/db-secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\ndata:\n  password: {V}\n",
        "b64_password",
        True,
    ),
    (
        "k8s/api-secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: api\ndata:\n  API_KEY: {V}\n",
        "b64_api_key",
        True,
    ),
    (
        "k8s/db-secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ndata:\n  username: {V}\n",
        "b64_username",
        False,
    ),
    (
        "k8s/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  LOG_FORMAT: {V}\n",
        "b64_username",
        False,
    ),
    (
        "deploy/helm/values-prod.yaml",
        "rabbitmq:\n  auth:\n    username: events\n    password: {V}\n",
        "password",
        True,
    ),
    (
        "deploy/helm/values.yaml",
        "externalDatabase:\n  existingSecret: db-credentials\n  password: {V}\n",
        "placeholder2",
        False,
    ),
    (
        "compose.yaml",
        "services:\n  minio:\n    environment:\n      MINIO_ROOT_USER: minio\n      MINIO_ROOT_PASSWORD: {V}\n",
        "passphrase",
        True,
    ),
    (
        "compose.yaml",
        "services:\n  app:\n    environment:\n      - DATABASE_PASSWORD=${DATABASE_PASSWORD:?set it}\n      - BUILD_SHA={V}\n",
        "git_sha",
        False,
    ),
    # ---------------------------------------------------------------- cloud and SaaS formats
    ("src/ai.py", 'client = OpenAI(api_key="{V}")\n', "openai", True),
    ("src/claude.ts", "const anthropic = new Anthropic({ apiKey: '{V}' });\n", "anthropic", True),
    ("scripts/hf_upload.py", 'login(token="{V}")\n', "huggingface", True),
    (
        ".github/workflows/pypi.yml",
        "      - run: twine upload -u __token__ -p {V} dist/*\n",
        "pypi",
        True,
    ),
    (
        "shop/config.rb",
        "ShopifyAPI::Context.setup(api_key: 'app', access_token: '{V}')\n",
        "shopify",
        True,
    ),
    ("infra/do.tf", 'provider "digitalocean" {\n  token = "{V}"\n}\n', "digitalocean", True),
    ("bot/main.py", "bot = telebot.TeleBot('{V}')\n", "telegram", True),
    (
        "notify/config.yml",
        "slack:\n  webhook_url: {V}\n",
        "slack_webhook",
        True,
    ),
    (
        "src/storage.cs",
        'var conn = "DefaultEndpointsProtocol=https;AccountName=shopassets;AccountKey={V};EndpointSuffix=core.windows.net";\n',
        "azure_key",
        True,
    ),
    (
        "keys/sa.json",
        '{\n  "type": "service_account",\n  "project_id": "shop-prod",\n  "private_key_id": "4f1c2e",\n  "private_key": "{V}",\n  "client_email": "ci@shop-prod.iam.gserviceaccount.com"\n}\n',
        "gcp_private_key",
        True,
    ),
    ("ops/vault.sh", "export VAULT_TOKEN={V}\n", "vault_token", True),
    ("ops/age.txt", "# created: 2024-05-01T10:00:00Z\n{V}\n", "age_key", True),
    ("ops/tfc.hcl", 'credentials "app.terraform.io" {\n  token = "{V}"\n}\n', "tfc_token", True),
    ("notebooks/etl.py", 'DATABRICKS_TOKEN = "{V}"\n', "databricks", True),
    (
        "scripts/clone.sh",
        "git clone https://x-access-token:{V}@github.com/acme/infra.git\n",
        "github_fine",
        True,
    ),
    ("src/payments.go", 'sq := square.NewClient("{V}")\n', "square", True),
    ("src/sms.py", "TWILIO_API_KEY_SECRET = '{V}'\n", "api_key", True),
    # ---------------------------------------------------------------- keys
    ("deploy/id_rsa", "{V}\n", "openssh_key", True),
    ("certs/ec.key", "{V}\n", "ec_key", True),
    ("certs/encrypted.key", "{V}\n", "encrypted_key", False),
    ("certs/ca.crt", "{V}\n", "certificate", False),
    ("deploy/authorized_keys", "{V}\n", "ssh_public", False),
    # ---------------------------------------------------------------- code
    (
        "src/repo.ex",
        'config :shop, Shop.Repo,\n  username: "shop",\n  password: "{V}",\n  hostname: "pg"\n',
        "password",
        True,
    ),
    (
        "build.sbt",
        'credentials += Credentials("Nexus", "nexus.corp.lan", "ci", "{V}")\n',
        "password",
        True,
    ),
    (
        "src/main/java/com/acme/Db.java",
        'Connection c = DriverManager.getConnection(url, "ledger", "{V}");\n',
        "password",
        True,
    ),
    (
        "internal/cfg/cfg.go",
        'var defaults = Config{\n\tUser:     "ledger",\n\tPassword: "{V}",\n}\n',
        "passphrase",
        True,
    ),
    ("Sources/Net/Keys.swift", 'static let apiKey = "{V}"\n', "api_key", True),
    ("src/settings.py", "DB_PASSWORD = {V}\n", "env_ref", False),
    ("src/settings.js", "const apiKey = {V};\n", "env_ref", False),
    ("src/Token.java", 'public static final String TOKEN_HEADER = "{V}";\n', "header_name", False),
    ("src/auth/errors.py", 'INVALID_PASSWORD = "{V}"\n', "i18n2", False),
    ("src/keys.py", 'STRIPE_PUBLISHABLE_KEY = "{V}"\n', "stripe_pk", False),
    ("src/aws_example.py", 'aws_access_key_id = "{V}"\n', "aws_example", False),
    ("web/oauth.js", 'const GOOGLE_CLIENT_ID = "{V}";\n', "google_client_id", False),
    ("src/users.rb", "  password_digest: '{V}'\n", "bcrypt", False),
    (
        "spec/user_spec.rb",
        "  let(:user) { create(:user, password: '{V}') }\n",
        "weak_password",
        True,
    ),
    ("test/login.test.js", "  await login(page, 'qa@acme.io', '{V}');\n", "weak_password", True),
    (
        "tests/test_nats.py",
        'nc = await nats.connect("nats://bot:{V}@localhost:4222")\n',
        "weak_password",
        True,
    ),
    ("src/http.rs", '    .header("Authorization", format!("Bearer {}", "{V}"))\n', "bearer", True),
    (
        "src/api.kt",
        'val request = Request.Builder().addHeader("X-Api-Key", "{V}").build()\n',
        "api_key",
        True,
    ),
    # ---------------------------------------------------------------- docs and prose
    (
        "docs/onboarding.md",
        "Log in to the staging console as `admin`; the password is {V}\n",
        "password",
        True,
    ),
    ("docs/ops.txt", "VPN account: ops-team\npassword: {V}\n", "passphrase", True),
    (
        "docs/faq.md",
        "The password must be {V} characters long and contain a digit.\n",
        "number_words",
        False,
    ),
    ("docs/de/anleitung.md", "Das Passwort ist {V}\n", "prose_neg", False),
    (
        "docs/setup.md",
        "Export your token first: `export GITLAB_TOKEN={V}`\n",
        "placeholder2",
        False,
    ),
    ("docs/setup.rst", ".. code-block:: bash\n\n   export SENTRY_TOKEN={V}\n", "api_key", True),
    ("docs/examples.md", "    mysql -h db.example.net -u root -p{V} shop\n", "password", False),
    # ---------------------------------------------------------------- data, lockfiles, CI
    (
        "package-lock.json",
        '    "node_modules/left-pad": {\n      "integrity": "{V}"\n    }\n',
        "sri",
        False,
    ),
    (
        ".pre-commit-config.yaml",
        "repos:\n  - repo: https://github.com/psf/black\n    rev: {V}\n",
        "git_sha",
        False,
    ),
    ("Dockerfile", "FROM python:3.12@sha256:{V}\n", "digest", False),
    ("locales/de.json", '{\n  "password_too_short": "{V}"\n}\n', "i18n2", False),
    ("locales/es.yml", 'es:\n  errors:\n    token_expired: "{V}"\n', "i18n2", False),
    ("errors.csv", "code,message\nE1043,{V}\n", "i18n2", False),
    (
        ".gitlab-ci.yml",
        'variables:\n  DOCKER_AUTH_CONFIG: \'{"auths":{"reg.corp.lan":{"auth":"{V}"}}}\'\n',
        "basic",
        True,
    ),
    (
        "Makefile",
        "deploy:\n\tcurl -fsS -H 'X-Auth-Token: {V}' https://deploy.corp.lan/hook\n",
        "bearer",
        True,
    ),
    ("tests/fixtures/users.csv", "id,email,password\n7,ana@corp.lan,{V}\n", "password", True),
]
