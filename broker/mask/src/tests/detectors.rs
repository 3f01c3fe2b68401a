//! Each detector alone: what it finds, and the near misses it must leave alone.

use super::found;
use crate::Detector;

/// Asserts that `detector` finds exactly `expected` in `text`.
#[track_caller]
fn finds(detector: Detector, text: &str, expected: &[&str]) {
    assert_eq!(found(detector, text), expected, "{detector} in {text:?}");
}

#[track_caller]
fn misses(detector: Detector, text: &str) {
    assert!(
        found(detector, text).is_empty(),
        "{detector} must not match {text:?}, found {:?}",
        found(detector, text)
    );
}

#[test]
fn card_numbers_plain_and_grouped() {
    let card = Detector::CardNumber;
    for number in [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5555555555554444",
        "2223003122003222",
        "378282246310005",
        "3782 822463 10005",
        "30569309025904",
        "3056 930902 5904",
        "6011111111111117",
        "3530111333300000",
        "4222222222222",
    ] {
        finds(card, number, &[number]);
        finds(card, &format!("paid with {number}, thanks"), &[number]);
    }
    finds(card, "card=4111111111111111;", &["4111111111111111"]);
    finds(card, "(4111 1111 1111 1111)", &["4111 1111 1111 1111"]);
}

#[test]
fn card_inside_longer_group_runs() {
    let card = Detector::CardNumber;
    finds(card, "4111 1111 1111 1111 2024", &["4111 1111 1111 1111"]);
    finds(card, "ref 12 4111 1111 1111 1111", &["4111 1111 1111 1111"]);
    // A change of separator does not hide the card behind it.
    finds(card, "7 5555-5555-5555-4444", &["5555-5555-5555-4444"]);
    // More groups than one run holds: the card across the cut is still seen whole.
    finds(
        card,
        "1 2 3 4 5 6 7 8 9 1 2 3 4 4111 1111 1111 1111",
        &["4111 1111 1111 1111"],
    );
}

#[test]
fn card_near_misses() {
    let card = Detector::CardNumber;
    // Luhn-invalid.
    misses(card, "4111111111111112");
    misses(card, "4111 1111 1111 1112");
    // A 16-digit order id that fails Luhn.
    misses(card, "order 4929123456789013 shipped");
    // Luhn-valid but no issuer starts with 1, 7 or 9.
    misses(card, "1234567812345670");
    // Too short, too long, or a card's digits inside a longer number.
    misses(card, "411111111111");
    misses(card, "41111111111111110000");
    misses(card, "4111111111111111000");
    // Glued to letters: hex digests and identifiers.
    misses(card, "deadbeef4111111111111111cafe");
    misses(card, "x4111111111111111");
    // Fractions and compact timestamps.
    misses(card, "0.4111111111111111");
    misses(card, "4111111111111111.25");
    misses(card, "20240115102345123");
    // Groups that are not a card layout.
    misses(card, "41 11 11 11 11 11 11 11");
    misses(card, "41111 11111 11111 1");
    // Mixed separators are not one card.
    misses(card, "4111 1111-1111 1111");
}

#[test]
fn ssn_positives() {
    let ssn = Detector::UsSsn;
    for number in ["078-05-1120", "123-45-6789", "123 45 6789", "899-99-9999"] {
        finds(ssn, number, &[number]);
        finds(ssn, &format!("SSN: {number}."), &[number]);
    }
}

#[test]
fn ssn_invalid_ranges_and_shapes() {
    let ssn = Detector::UsSsn;
    for number in [
        "000-12-3456",
        "666-12-3456",
        "900-12-3456",
        "999-12-3456",
        "123-00-4567",
        "123-45-0000",
        // Shapes that are not an SSN.
        "123456789",
        "123-45-67890",
        "1123-45-6789",
        "123-456-789",
        "123-45 6789",
        // Part of a longer dashed identifier or a date-like run.
        "12-123-45-6789",
        "123-45-6789-01",
        "a123-45-6789",
    ] {
        misses(ssn, number);
    }
}

#[test]
fn iban_positives() {
    let iban = Detector::Iban;
    for number in [
        "DE89370400440532013000",
        "DE89 3704 0044 0532 0130 00",
        "GB82 WEST 1234 5698 7654 32",
        "NO9386011117947",
        "FR1420041010050500013M02606",
        "NL91ABNA0417164300",
    ] {
        finds(iban, number, &[number]);
        finds(iban, &format!("pay to {number} by Friday"), &[number]);
    }
}

#[test]
fn iban_near_misses() {
    let iban = Detector::Iban;
    // Wrong check digits.
    misses(iban, "DE88370400440532013000");
    misses(iban, "DE88 3704 0044 0532 0130 00");
    // Wrong length for the country, unknown country, lower case, glued.
    misses(iban, "DE8937040044053201300");
    misses(iban, "DE893704004405320130001");
    misses(iban, "XX89370400440532013000");
    misses(iban, "de89370400440532013000");
    misses(iban, "XDE89370400440532013000");
}

#[test]
fn phone_positives() {
    let phone = Detector::Phone;
    for number in [
        "+14155552671",
        "+1 (415) 555-2671",
        "+1 415 555 2671",
        "+44 20 7946 0958",
        "+44 (0)20 7946 0958",
        "+49 30 1234567",
        "+33 6 12 34 56 78",
        "(415) 555-2671",
        "(415)555-2671",
        "415-555-2671",
        "415.555.2671",
        "415 555 2671",
        "1-415-555-2671",
        "020 7946 0958",
        "(030) 1234567",
        "0171-1234567",
        "06 12 34 56 78",
        "030/1234567",
    ] {
        finds(phone, number, &[number]);
        finds(phone, &format!("call {number} today"), &[number]);
    }
    finds(phone, "call 020 7946 0958 2 times", &["020 7946 0958"]);
}

#[test]
fn phone_is_not_a_date_a_time_an_integer_or_a_card() {
    let phone = Detector::Phone;
    for text in [
        "2024-01-15",
        "2024-01-15T10:23:45Z",
        "2024-01-15 10:23:45.123+00",
        "2024-01-15 10:23:45.123456+02:00",
        "15.01.2024 10:23",
        "01.02.2023 10:23",
        "01/02/2023",
        "01-02-2023",
        "20240115",
        "4155552671",
        "04155552671",
        "12345678901",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "3.14159265",
        "192.168.100.200",
        "10.0.0.1",
        "123-456-7890",
        "v1.2.3.4",
        "1 234 567,89",
        "invoice 2024 1234 5678",
        "+123",
        "+0 20 7946 0958",
        "0.5 0.25 0.125 0.0625",
        "x020 7946 0958",
    ] {
        misses(phone, text);
    }
}

#[test]
fn email_positives() {
    let email = Detector::Email;
    finds(email, "ada@example.com", &["ada@example.com"]);
    finds(
        email,
        "Key (email)=(ada@example.com) already exists.",
        &["ada@example.com"],
    );
    finds(
        email,
        "<first.last+tag@mail.example.co.uk>",
        &["first.last+tag@mail.example.co.uk"],
    );
    finds(email, "write to ada@example.com.", &["ada@example.com"]);
    finds(email, "a@b.co, c@d.io", &["a@b.co", "c@d.io"]);
    finds(email, "{\"to\":\"ADA@EXAMPLE.ORG\"}", &["ADA@EXAMPLE.ORG"]);
}

#[test]
fn email_near_misses() {
    let email = Detector::Email;
    for text in [
        "user@localhost",
        "@example.com",
        "ada@",
        "a@b.c",
        "name@domain.c0m",
        "x@123.45",
        "follow @handle on social",
        "price @ 4.50",
        "....@example",
    ] {
        misses(email, text);
    }
}

#[test]
fn secrets_cloud_keys_and_tokens() {
    let secret = Detector::Secret;
    for token in [
        "AKIAIOSFODNN7EXAMPLE",
        "ASIAY34FZKBOKMUTVV7A",
        "ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R",
        "gho_16C7e42F292c6912E7710c838347Ae178B4a",
        "ghs_16C7e42F292c6912E7710c838347Ae178B4a",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUV",
        "xoxb-123456789012-1234567890123-abcdefghijklmnopqrstuvwx",
        "xoxp-123456789012-abcdefghij",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "rk_live_4eC39HqLyjWDarjtT1zdp7dc",
    ] {
        finds(secret, token, &[token]);
        finds(secret, &format!("token={token}&x=1"), &[token]);
        finds(secret, &format!("\"{token}\""), &[token]);
    }
}

#[test]
fn secret_near_misses() {
    let secret = Detector::Secret;
    for text in [
        "AKIAIOSFODNN7EXAMPL",
        "XAKIAIOSFODNN7EXAMPLE",
        "AKIAIOSFODNN7EXAMPLEX",
        "akiaiosfodnn7example",
        "AKIAiosfodnn7example",
        "ghp_short",
        "ghx_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R",
        "xoxz-123456789012-abcdefghij",
        "xoxb-short",
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "sk_live_short",
        "ASIA is a continent, AKIA is not a word",
    ] {
        misses(secret, text);
    }
}

#[test]
fn jwt_versus_dotted_text() {
    let secret = Detector::Secret;
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    finds(secret, jwt, &[jwt]);
    finds(secret, &format!("Authorization: Bearer {jwt}"), &[jwt]);
    // An unsigned token (`alg: none`) still carries its claims.
    let unsigned = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZGEifQ.";
    finds(secret, unsigned, &[unsigned]);
    for text in [
        "eyJhbGciOiJIUzI1NiJ9.notjson.signature",
        "foo.bar.baz",
        "www.example.com",
        "a.b.c",
        "eyJ.eyJ.x",
        "eyJhbGciOiJIUzI1NiJ9",
        "xeyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig",
    ] {
        misses(secret, text);
    }
}

#[test]
fn pem_private_key_blocks() {
    let secret = Detector::Secret;
    let rsa = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM\n9Oi..\n-----END RSA PRIVATE KEY-----";
    finds(secret, rsa, &[rsa]);
    finds(secret, &format!("key:\n{rsa}\ntrailing"), &[rsa]);
    let pkcs8 =
        "-----BEGIN PRIVATE KEY-----\r\nMC4CAQAwBQYDK2VwBCIEIA==\r\n-----END PRIVATE KEY-----";
    finds(secret, pkcs8, &[pkcs8]);
    let openssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----";
    finds(secret, openssh, &[openssh]);
    let pgp =
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----";
    finds(secret, pgp, &[pgp]);
    // As JSON text, with escaped newlines.
    let escaped = r"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBk=\n-----END EC PRIVATE KEY-----";
    finds(secret, &format!("{{\"key\":\"{escaped}\"}}"), &[escaped]);
    // No END: masked to the end of the value, a truncated key is still a key.
    let truncated = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA3Tz2";
    finds(secret, &format!("x {truncated}"), &[truncated]);
    // Public material is not a secret.
    misses(
        secret,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
    );
    misses(
        secret,
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----",
    );
}

#[test]
fn nothing_in_ordinary_values() {
    for text in [
        "Ada Lovelace",
        "active",
        "2024-01-15 10:23:45.123+00",
        "12345",
        "-98765.4321",
        "550e8400-e29b-41d4-a716-446655440000",
        "{\"a\": 1, \"b\": [1, 2, 3]}",
        "SELECT * FROM users WHERE id = 42",
        "The quick brown fox jumps over the lazy dog",
        "",
        "a",
    ] {
        for detector in Detector::ALL {
            misses(detector, text);
        }
    }
}
