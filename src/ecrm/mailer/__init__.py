"""Pushing the published audiences to the mailer (ESP): diff, compliance first, batches, audit."""
