"""Turn two-factor sign-in off for a user who lost both their phone and their recovery codes.

Their authenticator and recovery codes stop working and their sessions end; at the next login
the password is enough (or, for staff with STAFF_REQUIRE_2FA, they enrol again at once).
Check who is asking before running it: this is the way around the second factor.
"""

from django.core.management.base import BaseCommand, CommandError
from django.db.models import F

from core.models import User
from core.two_factor import has_two_factor, two_factor_remove


class Command(BaseCommand):
    help = "Remove a user's authenticator and recovery codes (they lost both) and end sessions."

    def add_arguments(self, parser):
        parser.add_argument("email", help="The user's login email.")

    def handle(self, *args, email, **options):
        user = User.objects.filter(email__iexact=email.strip()).first()
        if user is None:
            raise CommandError(f"No user has the email {email!r}.")
        if not has_two_factor(user):
            self.stdout.write(f"{user.email} has no two-factor sign-in; nothing to do.")
            return
        two_factor_remove(user)
        User.objects.filter(pk=user.pk).update(session_epoch=F("session_epoch") + 1)
        self.stdout.write(
            f"Two-factor sign-in is off for {user.email}; their sessions have ended. They log "
            "in with their password and can set it up again on the two-factor page."
        )
