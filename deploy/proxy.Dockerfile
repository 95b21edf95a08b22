# The response-streaming proxy function (ProxyStreamingFunction in deploy/template.yaml).
#
# AWS's Lambda base image for Python, for its Python and boto3 (the same as the managed
# python3.12 runtime of the buffered ProxyFunction, patched by AWS), with its entry point replaced
# by deploy/bootstrap: our own Runtime API loop (proxy/runtime.py) instead of AWS's runtime
# interface client, because that one answers buffered only. See docs/proxy.md, "Deployment".
#
# `sam build` builds it from the repository root (DockerContext: .. in the template; the root
# .dockerignore keeps .venv, var/ and .env out of the context). Only proxy/*.py and the bootstrap
# go in, and no RUN step executes anything, so an arm64 image builds on any host.
FROM public.ecr.aws/lambda/python:3.12

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

COPY proxy/*.py /var/task/proxy/
# COPY keeps the file mode: the bootstrap is executable in the repository.
COPY deploy/bootstrap /var/task/bootstrap

ENTRYPOINT ["/var/task/bootstrap"]
