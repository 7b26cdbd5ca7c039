from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0014_rollback_break_glass"),
    ]

    operations = [
        migrations.AddField(
            model_name="transitionrequest",
            name="content_digest",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.AddField(
            model_name="transitionrequest",
            name="metric_pins",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="vote",
            name="seen_digest",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
    ]
