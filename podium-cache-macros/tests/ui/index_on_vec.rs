use podium_cache_core::Cacheable;

#[derive(Cacheable)]
#[cacheable(table = "Events")]
struct Event {
    id: String,
    #[cacheable(index)]
    tags: Vec<String>,
}

fn main() {}
