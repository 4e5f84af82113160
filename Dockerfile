# The one image of Hafnium Portal: web (gunicorn), worker and beat (celery), the one-shot migrate, and
# the MLflow tracking server (mlflow and psycopg 3 are in requirements.txt). See docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 hafnium \
    && useradd --system --uid 10001 --gid hafnium --create-home --home-dir /home/hafnium \
       --shell /usr/sbin/nologin hafnium

WORKDIR /app

# Requirements first, so that a code change does not reinstall them.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .

# The secret key is a throwaway for this step only: settings refuse to load without one when DEBUG is
# off, and collectstatic signs nothing. With DEBUG off the hashed, compressed manifest is produced.
# var/ (created by settings on import) and /mlartifacts (the MLflow server's artifact store, mounted
# as a volume that inherits this ownership) must be writable by the unprivileged user.
RUN DJANGO_SECRET_KEY=build-only-not-secret python manage.py collectstatic --noinput \
    && mkdir -p /app/var /mlartifacts \
    && chown hafnium:hafnium /app/var /mlartifacts

USER hafnium

EXPOSE 8000

CMD ["gunicorn", "hafnium_portal.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
