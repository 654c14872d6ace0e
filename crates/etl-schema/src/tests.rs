use crate::evolution::{check_evolution, EvolutionError};
use crate::*;
use arrow_schema::DataType;

fn call() -> StreamSchema {
    embedded()
        .unwrap()
        .into_iter()
        .find(|s| s.stream == "call_events")
        .unwrap()
}

#[test]
fn embedded_schemas_match_the_repository_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    assert_eq!(load_dir(&dir).unwrap(), embedded().unwrap());
}

#[test]
fn lake_columns_flatten_structs_and_end_with_extras() {
    let names: Vec<String> = call().lake_columns().into_iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "event_id",
            "call_id",
            "event_type",
            "occurred_at",
            "account_id",
            "caller",
            "callee",
            "direction",
            "channel",
            "region",
            "codec",
            "duration_ms",
            "hangup_cause",
            "quality_mos",
            "quality_jitter_ms",
            "quality_packet_loss_pct",
            "quality_rtt_ms",
            "extras",
            "arrived_at"
        ]
    );
    let occurred = call()
        .lake_columns()
        .into_iter()
        .find(|c| c.name == "occurred_at")
        .unwrap();
    assert_eq!(occurred.hive_type, "timestamp");
    assert_eq!(
        occurred.data_type,
        DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, Some("UTC".into()))
    );
    assert!(!occurred.nullable);
    assert_eq!(call().phone_columns(), ["caller", "callee"]);
}

#[test]
fn decoded_schema_keeps_structs_nested() {
    let s = call().decoded_arrow_schema();
    assert!(
        matches!(s.field_with_name("quality").unwrap().data_type(), DataType::Struct(f) if f.len() == 4)
    );
    assert_eq!(s.fields().last().unwrap().name(), "extras");
}

#[test]
fn bad_schema_files_name_the_problem() {
    let cases = [
        ("stream = \"x\"\nversion = 1\nfields = []\n", "at least one field"),
        ("stream = \"X\"\nversion = 1\n[[fields]]\nname = \"a\"\ntype = \"string\"\n", "lowercase"),
        ("stream = \"x\"\nversion = 1\n[[fields]]\nname = \"a\"\ntype = \"strin\"\n", "unknown variant"),
        ("stream = \"x\"\nversion = 1\n[[fields]]\nname = \"a\"\ntype = \"enum\"\n", "needs `values"),
        ("stream = \"x\"\nversion = 1\n[[fields]]\nname = \"a\"\ntype = \"string\"\nvalues = [\"b\"]\n", "enum\" only"),
        ("stream = \"x\"\nversion = 1\ncolour = 1\n[[fields]]\nname = \"a\"\ntype = \"string\"\n", "unknown field"),
        ("stream = \"x\"\nversion = 1\n[[fields]]\nname = \"event_id\"\ntype = \"string\"\nrequird = true\n", "requird"),
        ("stream = \"x\"\nversion = 1\n[[fields]]\nname = \"a\"\ntype = \"string\"\n", "event_id"),
        (
            "stream = \"x\"\nversion = 1\n[[fields]]\nname = \"event_id\"\ntype = \"string\"\nrequired = true\n[[fields]]\nname = \"occurred_at\"\ntype = \"timestamp\"\nrequired = true\n[[fields]]\nname = \"dt\"\ntype = \"string\"\n",
            "reserved",
        ),
    ];
    for (text, expect) in cases {
        let err = StreamSchema::from_toml_str(text, "test.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains(expect), "{err} should mention {expect}");
        assert!(err.contains("test.toml"), "{err} should name the file");
    }
}

#[test]
fn evolution_allows_appending_optional_fields_only() {
    let old = call();
    let mut new = old.clone();
    new.version += 1;
    new.fields.push(Field {
        name: "carrier".into(),
        ty: FieldType::String,
        required: false,
        max_length: None,
        doc: String::new(),
    });
    let added = check_evolution(&old, &new).unwrap();
    assert_eq!(
        added.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["carrier"]
    );

    let mut retyped = new.clone();
    retyped
        .fields
        .iter_mut()
        .find(|f| f.name == "duration_ms")
        .unwrap()
        .ty = FieldType::Double;
    let err = check_evolution(&old, &retyped).unwrap_err();
    assert!(
        matches!(&err, EvolutionError::TypeChanged { column, .. } if column == "duration_ms"),
        "{err}"
    );

    let mut removed = new.clone();
    removed.fields.retain(|f| f.name != "codec");
    assert!(
        matches!(check_evolution(&old, &removed).unwrap_err(), EvolutionError::Removed { column, .. } if column == "codec")
    );

    let mut required = new.clone();
    required.fields.last_mut().unwrap().required = true;
    assert!(matches!(
        check_evolution(&old, &required).unwrap_err(),
        EvolutionError::AddedRequired { .. }
    ));

    let mut same_version = new;
    same_version.version = old.version;
    assert!(matches!(
        check_evolution(&old, &same_version).unwrap_err(),
        EvolutionError::Version { .. }
    ));
    assert!(check_evolution(&old, &old).unwrap().is_empty());
}

#[test]
fn schemas_round_trip_through_json_and_toml() {
    for schema in embedded().unwrap() {
        let json = serde_json::to_string(&schema).unwrap();
        assert_eq!(serde_json::from_str::<StreamSchema>(&json).unwrap(), schema);
        let text = toml::to_string(&schema).unwrap();
        assert_eq!(
            StreamSchema::from_toml_str(&text, "round-trip").unwrap(),
            schema
        );
    }
}
