# Odoo 18 from the official image, plus the shared zero_sudo_bus library the addons import and
# pika (the addons' RabbitMQ client); none of the daemons' runtime. The addons themselves are
# mounted from ./addons, not copied.
FROM odoo:18.0
USER root
COPY pyproject.toml README.md /opt/zero_sudo/
COPY shared /opt/zero_sudo/shared
RUN pip3 install --no-cache-dir --break-system-packages '/opt/zero_sudo[odoo]'
USER odoo
