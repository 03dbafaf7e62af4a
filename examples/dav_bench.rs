//! Benchmark of the calendar and contacts libraries: reading a large ICS and CSV, and copying
//! into a CalDAV/CardDAV server. Run through scripts/bench-dav.sh, which starts a Radicale.
//!
//! Usage: dav_bench BASE_URL USER PASSWORD EVENTS CONTACTS CONCURRENCY

use std::sync::Arc;
use std::time::Instant;

use mailplan::items::calendar::{self, CalDav, CalendarStore, DavConfig, PutOutcome};
use mailplan::items::contacts::{self, CardDav, ContactStore, VcardObject, VcardVersion};

fn ics(events: usize) -> String {
    let mut s = String::from(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\nBEGIN:VTIMEZONE\r\nTZID:W. Europe\r\n\
         BEGIN:STANDARD\r\nDTSTART:19501029T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n\
         RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\n\
         DTSTART:19500326T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\n\
         RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n",
    );
    for i in 0..events {
        // Every tenth event recurs weekly from Monday 2024-01-01, with two moved occurrences.
        let recurs = i % 10 == 0;
        let (m, d) = if recurs {
            (1, 1)
        } else {
            (1 + i % 12, 1 + i % 28)
        };
        s.push_str(&format!(
            "BEGIN:VEVENT\r\nUID:bench-{i}@example.com\r\nDTSTAMP:20240101T000000Z\r\n\
             DTSTART;TZID=\"W. Europe\":2024{m:02}{d:02}T090000\r\n\
             DTEND;TZID=\"W. Europe\":2024{m:02}{d:02}T100000\r\nSUMMARY:Meeting {i}\r\n\
             DESCRIPTION:{}\r\n",
            "Agenda item\\, notes and a longer description. ".repeat(3)
        ));
        if recurs {
            s.push_str("RRULE:FREQ=WEEKLY;COUNT=20\r\nEND:VEVENT\r\n");
            for day in ["08", "15"] {
                s.push_str(&format!(
                    "BEGIN:VEVENT\r\nUID:bench-{i}@example.com\r\nDTSTAMP:20240101T000000Z\r\n\
                     RECURRENCE-ID;TZID=\"W. Europe\":202401{day}T090000\r\n\
                     DTSTART;TZID=\"W. Europe\":202401{day}T110000\r\nSUMMARY:Moved {i}\r\n\
                     END:VEVENT\r\n"
                ));
            }
        } else {
            s.push_str("END:VEVENT\r\n");
        }
    }
    s.push_str("END:VCALENDAR\r\n");
    s
}

fn csv(contacts: usize) -> String {
    let mut s = String::from(
        "firstName,lastName,email,company,jobTitle,mobilePhone,workStreet,workCity,notes\r\n",
    );
    for i in 0..contacts {
        s.push_str(&format!(
            "Person{i},Müller{i},person{i}@example.com,\"Acme, Inc.\",Engineer,+41 79 555 {i:04},\
             \"Street {i}\",Zürich,\"Line one\nline two; with, punctuation\"\r\n"
        ));
    }
    s
}

fn rate(n: usize, secs: f64) -> String {
    format!("{:>8} in {:>7.2} s = {:>8.0}/s", n, secs, n as f64 / secs)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        eprintln!("usage: dav_bench BASE_URL USER PASSWORD EVENTS CONTACTS CONCURRENCY");
        std::process::exit(2);
    }
    let (base, user, password) = (&args[1], &args[2], &args[3]);
    let n_events: usize = args[4].parse().unwrap_or(1000);
    let n_contacts: usize = args[5].parse().unwrap_or(1000);
    let concurrency: usize = args[6].parse().unwrap_or(4).max(1);
    let dir = std::env::temp_dir().join(format!("dav-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let ics_path = dir.join("cal.ics");
    std::fs::write(&ics_path, ics(n_events)).unwrap();
    let t = Instant::now();
    let (objects, bad) = calendar::read_ics(&ics_path).unwrap();
    let size = std::fs::metadata(&ics_path).unwrap().len() as f64 / 1048576.0;
    println!(
        "read_ics ({size:.1} MiB)          {}",
        rate(objects.len(), t.elapsed().as_secs_f64())
    );
    assert!(bad.is_empty());

    let csv_path = dir.join("contacts.csv");
    std::fs::write(&csv_path, csv(n_contacts)).unwrap();
    let t = Instant::now();
    let (list, bad) = contacts::read_csv(&csv_path).unwrap();
    let cards: Vec<VcardObject> = list
        .iter()
        .map(|c| VcardObject::new(c, VcardVersion::V4))
        .collect();
    println!(
        "read_csv + to_vcard            {}",
        rate(cards.len(), t.elapsed().as_secs_f64())
    );
    assert!(bad.is_empty());
    let _ = std::fs::remove_dir_all(&dir);

    let config = |name: &str| DavConfig {
        url: format!("{base}{user}/{name}/"),
        user: Some(user.clone()),
        password: Some(password.clone()),
        ..Default::default()
    };

    let cal = Arc::new(CalDav::new(&config("bench-calendar")).unwrap());
    let t = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for o in objects.clone() {
        let (cal, sem) = (cal.clone(), sem.clone());
        tasks.spawn(async move {
            let _permit = sem.acquire().await;
            cal.put(&o, None).await
        });
    }
    let mut created = 0;
    while let Some(r) = tasks.join_next().await {
        if matches!(r, Ok(Ok(PutOutcome::Created))) {
            created += 1;
        }
    }
    println!(
        "CalDAV PUT (x{concurrency})                {}",
        rate(created, t.elapsed().as_secs_f64())
    );
    let t = Instant::now();
    let listed = cal.list().await.unwrap();
    println!(
        "CalDAV list                    {}",
        rate(listed.len(), t.elapsed().as_secs_f64())
    );

    let book = Arc::new(CardDav::new(&config("bench-contacts"), VcardVersion::V4).unwrap());
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in cards.clone() {
        let (book, sem) = (book.clone(), sem.clone());
        tasks.spawn(async move {
            let _permit = sem.acquire().await;
            book.put(&c, None).await
        });
    }
    let mut created = 0;
    while let Some(r) = tasks.join_next().await {
        if matches!(r, Ok(Ok(PutOutcome::Created))) {
            created += 1;
        }
    }
    println!(
        "CardDAV PUT (x{concurrency})               {}",
        rate(created, t.elapsed().as_secs_f64())
    );
    let t = Instant::now();
    let listed = book.list().await.unwrap();
    println!(
        "CardDAV list                   {}",
        rate(listed.len(), t.elapsed().as_secs_f64())
    );
}
