# RegisteredModel.synced_at and ModelVersion.synced_at were never read, and the mirror's bulk
# updates left them stale (bulk_update skips auto_now): the models drop them.
#
# The columns stay one more release. `migrate` runs while the previous release still serves
# (docs/deploy.md, Upgrades), and that code selects and writes synced_at; so this migration only
# makes the columns nullable, which lets this release insert rows without them. The release
# after this one drops the columns.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('registry', '0003_sync_hardening'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AlterField(
                    model_name='modelversion',
                    name='synced_at',
                    field=models.DateTimeField(auto_now=True, null=True),
                ),
                migrations.AlterField(
                    model_name='registeredmodel',
                    name='synced_at',
                    field=models.DateTimeField(auto_now=True, null=True),
                ),
            ],
            state_operations=[
                migrations.RemoveField(
                    model_name='modelversion',
                    name='synced_at',
                ),
                migrations.RemoveField(
                    model_name='registeredmodel',
                    name='synced_at',
                ),
            ],
        ),
    ]
