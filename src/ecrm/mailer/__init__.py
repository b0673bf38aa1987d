"""Publishing audited segments and pushing audiences to the mailer (ESP)."""
