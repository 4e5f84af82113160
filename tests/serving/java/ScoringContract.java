// The Java backend's side of the scoring API contract, with JDK 17's java.net.http only.
// Usage: java ScoringContract <base url> <token> <model> <one.json> <batch.json> <batch size>
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

public class ScoringContract {
    static final String[] FIELDS = {"request_id", "transaction_id", "model", "version", "score", "decision", "fallback"};
    static final Pattern ANSWER = Pattern.compile(
        "\\{\"request_id\": ?\"[0-9a-f]{32}\", ?\"transaction_id\": ?\"([^\"]+)\", ?\"model\": ?\"([^\"]+)\", ?"
        + "\"version\": ?(\\d+), ?\"score\": ?([0-9.eE+-]+), ?\"decision\": ?\"(approve|review|decline)\", ?"
        + "\"fallback\": ?(true|false)\\}");

    public static void main(String[] args) throws Exception {
        String base = args[0], token = args[1], model = args[2];
        HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
        URI uri = URI.create(base + "/api/v1/models/" + model + "/score");

        String one = post(client, uri, token, Files.readString(Path.of(args[3])));
        Matcher single = ANSWER.matcher(one);
        check(single.matches(), "one transaction: unexpected answer " + one);
        check(single.group(1).equals("java-1"), "one transaction: transaction_id " + single.group(1));
        check(single.group(2).equals(model), "one transaction: model " + single.group(2));
        double score = Double.parseDouble(single.group(4));
        check(score >= 0.0 && score <= 1.0, "one transaction: score " + score);

        String batch = post(client, uri, token, Files.readString(Path.of(args[4])));
        check(batch.startsWith("{\"items\": [") || batch.startsWith("{\"items\":["), "batch: " + batch);
        Matcher items = ANSWER.matcher(batch);
        int count = 0;
        while (items.find()) {
            check(items.group(1).equals("java-batch-" + count), "batch order: " + items.group(1));
            count++;
        }
        check(count == Integer.parseInt(args[5]), "batch: " + count + " answers");
        System.out.println("OK one score=" + score + " batch=" + count);
    }

    static String post(HttpClient client, URI uri, String token, String body) throws Exception {
        HttpRequest request = HttpRequest.newBuilder(uri)
            .timeout(Duration.ofSeconds(30))
            .header("Content-Type", "application/json")
            .header("Authorization", "Token " + token)
            .POST(HttpRequest.BodyPublishers.ofString(body))
            .build();
        HttpResponse<String> response = client.send(request, HttpResponse.BodyHandlers.ofString());
        check(response.statusCode() == 200, "HTTP " + response.statusCode() + ": " + response.body());
        return response.body();
    }

    static void check(boolean condition, String message) {
        if (!condition) {
            System.err.println("FAILED " + message);
            System.exit(1);
        }
    }
}
