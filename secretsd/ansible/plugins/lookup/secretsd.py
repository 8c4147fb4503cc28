"""Ansible lookup plugin ``secretsd``: read secrets by reference, through the SDK."""

from __future__ import annotations

DOCUMENTATION = """
    name: secretsd
    author: secretsd
    short_description: Read secrets from secretsd by secretsd:// reference
    description:
      - Resolves one or more C(secretsd://<path>[?version=<n>][#<key>]) references
        in one call to the secretsd service, through the secretsd Python SDK.
      - A reference with C(#key) gives that value (a string); one without gives the
        whole secret as a dictionary. Values of binary keys are returned base64-encoded.
      - The SDK is configured like every secretsd client (SECRETSD_ADDR, SECRETSD_TOKEN or
        SECRETSD_TOKEN_FILE, AppRole or Kubernetes login variables, or the file written by
        C(secretsd login)); the options below override the address and token file.
      - Results are marked unsafe, so a value containing C({{) is never templated.
    options:
      _terms:
        description: secretsd:// references.
        required: true
      addr:
        description: The secretsd service's address.
        type: string
        env:
          - name: SECRETSD_ADDR
        vars:
          - name: secretsd_addr
      token_file:
        description: A file holding the secretsd token.
        type: path
        vars:
          - name: secretsd_token_file
"""

EXAMPLES = """
- name: Use a database password without ansible-vault
  ansible.builtin.template:
    src: app.conf.j2
    dest: /etc/app.conf
  vars:
    db_password: "{{ lookup('secretsd', 'secretsd://apps/web/db#password') }}"

- name: Several references, one round trip
  ansible.builtin.debug:
    msg: "{{ query('secretsd', 'secretsd://apps/db#user', 'secretsd://apps/db#password') }}"
"""

RETURN = """
  _raw:
    description: One value (string) or whole secret (dictionary) per reference, in order.
    type: list
"""

import os  # noqa: E402
from typing import Any  # noqa: E402

from ansible.errors import AnsibleError  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402
from ansible.utils.unsafe_proxy import wrap_var  # noqa: E402


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        self.set_options(var_options=variables, direct=kwargs)
        try:
            from secretsd.client import Client, load_client_settings
            from secretsd.errors import SecretsdError
        except ImportError as error:  # pragma: no cover - depends on the controller
            raise AnsibleError(
                f"the secretsd lookup needs the secretsd package on the controller ({error})"
            ) from None
        refs = [str(term) for term in terms]
        if not refs:
            return []
        environ = dict(os.environ)
        token_file = self.get_option("token_file")
        if token_file:
            environ["SECRETSD_TOKEN_FILE"] = str(token_file)
            environ.pop("SECRETSD_TOKEN", None)
        try:
            settings = load_client_settings(self.get_option("addr"), env=environ)
            # A lookup is over in a moment and hands values on to hosts: no version report.
            with Client(settings=settings, auto_renew=False, report_versions=False) as client:
                results = client.resolve(refs)
        except SecretsdError as error:
            # Messages never carry a value (and a non-reference term is never echoed).
            raise AnsibleError(f"secretsd lookup: {error.message}") from None
        values: list[Any] = [
            result.value if result.value is not None else dict(result.data or {})
            for result in results
        ]
        return wrap_var(values)
