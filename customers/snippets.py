"""Ready-to-run request examples for the customer's own token and the proxy URL.

The sandbox model answers without calling Bedrock, so the examples cost nothing to try.
The token is inserted only into the response that shows it once; elsewhere a placeholder.
"""

import json

from django.conf import settings

SANDBOX_MODEL = "sandbox.echo-v1"
PLACEHOLDER = "YOUR_TOKEN"


def snippets(token: str = PLACEHOLDER) -> list[dict]:
    base = settings.PROXY_BASE_URL.rstrip("/")
    url = f"{base}/v1/chat/completions"
    body = {"model": SANDBOX_MODEL, "messages": [{"role": "user", "content": "Hello!"}]}
    body_json = json.dumps(body)
    return [
        {
            "id": "snippet-curl",
            "title": "curl",
            "code": (
                f"curl -sS {url} \\\n"
                f'  -H "Authorization: Bearer {token}" \\\n'
                '  -H "Content-Type: application/json" \\\n'
                f"  -d '{body_json}'"
            ),
        },
        {
            "id": "snippet-python",
            "title": "Python (requests)",
            "code": (
                "import requests\n\n"
                "response = requests.post(\n"
                f'    "{url}",\n'
                f'    headers={{"Authorization": "Bearer {token}"}},\n'
                f"    json={body!r},\n"
                "    timeout=60,\n"
                ")\n"
                "response.raise_for_status()\n"
                'print(response.json()["choices"][0]["message"]["content"])'
            ),
        },
        {
            "id": "snippet-js",
            "title": "JavaScript (fetch)",
            "code": (
                f'const response = await fetch("{url}", {{\n'
                '  method: "POST",\n'
                "  headers: {\n"
                f'    "Authorization": "Bearer {token}",\n'
                '    "Content-Type": "application/json",\n'
                "  },\n"
                f"  body: JSON.stringify({body_json}),\n"
                "});\n"
                "const data = await response.json();\n"
                "console.log(data.choices[0].message.content);"
            ),
        },
        {
            "id": "snippet-openai",
            "title": "OpenAI Python SDK",
            "code": (
                "from openai import OpenAI\n\n"
                f'client = OpenAI(base_url="{base}/v1", api_key="{token}")\n'
                "completion = client.chat.completions.create(\n"
                f'    model="{SANDBOX_MODEL}",\n'
                '    messages=[{"role": "user", "content": "Hello!"}],\n'
                ")\n"
                "print(completion.choices[0].message.content)"
            ),
        },
    ]
