//! `riftstream produce generator|replay|rows`: feed topics or files.

use super::{EncodingArg, Exit, Produce};
use crate::config::{Encoding, KafkaConfig};
use crate::generator::{GeneratorConfig, RowsConfig};
use crate::produce::ProduceTarget;

fn target(brokers: String, registry: String, encoding: EncodingArg, partitions: i32) -> ProduceTarget {
    ProduceTarget {
        kafka: KafkaConfig {
            brokers,
            schema_registry: Some(registry),
            group_id: "riftstream-produce".into(),
            properties: Default::default(),
        },
        encoding: match encoding {
            EncodingArg::Avro => Encoding::Avro,
            EncodingArg::Json => Encoding::Json,
        },
        partitions,
        topic_prefix: String::new(),
        rate: None,
    }
}

/// Runs one `produce` subcommand.
pub fn produce(command: Produce) -> anyhow::Result<()> {
    match command {
        Produce::Generator {
            brokers,
            out,
            matches,
            live_games,
            players,
            seed,
            jitter_ms,
            encoding,
            registry,
            partitions,
            rate,
        } => {
            let cfg = GeneratorConfig {
                seed,
                players,
                matches,
                live_games,
                jitter_ms,
                ..Default::default()
            };
            match (brokers, out) {
                (Some(brokers), None) => {
                    let target = ProduceTarget {
                        rate,
                        ..target(brokers, registry, encoding, partitions)
                    };
                    for (topic, n) in crate::produce::produce_simulation(&target, &cfg)? {
                        println!("{n:>9} {topic}");
                    }
                }
                (None, Some(out)) => {
                    for (topic, n) in crate::demo::write_simulation(&cfg, &out)? {
                        println!("{n:>9} {topic} -> {}", out.join(format!("{topic}.jsonl")).display());
                    }
                }
                _ => {
                    return Err(Exit {
                        message: "give either --brokers (Kafka) or --out DIR (JSON-lines files)".into(),
                        code: 2,
                    }
                    .into())
                }
            }
        }
        Produce::Replay {
            brokers,
            registry,
            encoding,
            partitions,
            oracles,
            ten_minute,
        } => {
            let target = target(brokers, registry, encoding, partitions);
            for file in oracles {
                let (matches, rejected) = crate::generator::oracles_elixir_matches(&file)?;
                for (game, why) in &rejected {
                    eprintln!("skipped game {game} of {}: {why}", file.display());
                }
                let n = crate::produce::produce(&target, matches)?;
                println!("{n:>9} esports.matches <- {}", file.display());
            }
            if let Some(file) = ten_minute {
                let start = crate::util::now_ms() - 24 * 3600 * 1000;
                let (events, games) = crate::generator::ten_minute_games(&file, start, 60_000)?;
                let n = crate::produce::produce(&target, events)?;
                println!(
                    "{n:>9} esports.game_events <- {} ({} live games)",
                    file.display(),
                    games.len()
                );
            }
        }
        Produce::Rows {
            out,
            rows,
            players,
            rate,
            jitter_ms,
            seed,
        } => {
            let cfg = RowsConfig {
                seed,
                rows,
                players,
                rows_per_second: rate,
                jitter_ms,
                ..Default::default()
            };
            let n = crate::demo::write_rows(cfg, &out)?;
            println!("{n} rows -> {}", out.display());
        }
    }
    Ok(())
}
